"""State of the fake Polytomic, one backend per resource (the layout moto gives a service).

* :mod:`.context`: the organization, the shared lock, clock and behaviour knobs;
* :mod:`.catalog`: connections and models;
* :mod:`.syncs`: model and bulk sync definitions;
* :mod:`.executions`: executions, their listings and console logs; :mod:`.lifecycle`: how
  they start, finish, fail and cancel (recording events);
* :mod:`.events`: the events store; :mod:`.webhooks`: the webhook and its deliveries;
* :mod:`.record_logs`: record-log files and URL signing; :mod:`.jobs`: log-export jobs;
* :mod:`.idempotency`: ``Idempotency-Key`` replays.

No HTTP here: :mod:`..routers` turn requests into backend calls, :mod:`..responses` turn
state into Polytomic's JSON.
"""
