"""Run a sensor the way Airflow would, in poke, reschedule or deferrable mode.

Only the task instance is a stand-in (it is Airflow's, not Polytomic's); everything the
sensor says to Polytomic goes over real HTTP to the fake server.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from airflow_provider_polytomic._compat import (
    AIRFLOW_V_3,
    AirflowRescheduleException,
    TaskDeferred,
    prepare_metadata_database,
    record_airflow2_reschedule,
    shared_stream_manager_class,
)

MODES = ("poke", "reschedule", "deferrable")


class FakeTI:
    """The few task-instance features sensors use: start date, first reschedule date, XCom.

    Shaped like the installed Airflow's task instance: Airflow 3's answers
    ``get_first_reschedule_date``; Airflow 2's has no such method and instead keeps the
    first reschedule's start in ``start_date`` (see :meth:`rescheduled`).
    """

    def __init__(self, start_date: datetime | None = None) -> None:
        self.start_date = start_date or datetime.now(timezone.utc)
        self.first_reschedule_date: datetime | None = None
        self.xcom: dict[str, Any] = {}
        self.dag_id, self.task_id, self.map_index, self.try_number, self.max_tries = "dag", "task", -1, 1, 0
        # Unique: Airflow 2 keeps reschedules in the metadata database, keyed by run.
        self.run_id = f"run-{uuid.uuid4().hex}"

    if AIRFLOW_V_3:

        def get_first_reschedule_date(self, context: Any) -> datetime | None:
            return self.first_reschedule_date

    def rescheduled(self, poke_started: datetime, reschedule_date: datetime) -> None:
        """What Airflow records when the sensor is rescheduled (Airflow 2: in the database,
        and ``start_date`` stays the first start, as Airflow 2 restores it)."""
        if self.first_reschedule_date is None:
            self.first_reschedule_date = poke_started
        if not AIRFLOW_V_3:
            record_airflow2_reschedule(self, poke_started, reschedule_date)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context_for(ti: FakeTI, **extra: Any) -> dict[str, Any]:
    """The task context; Airflow 2 has no ``task_reschedule_count`` in it."""
    context = {"ti": ti, "task_instance": ti, **extra}
    if AIRFLOW_V_3:
        context.setdefault("task_reschedule_count", 0)
    else:
        context.pop("task_reschedule_count", None)
    return context


async def first_trigger_event(trigger: Any, timeout: float) -> dict[str, Any]:
    """Run a trigger until its first event, like the triggerer does (run() then cleanup())."""
    agen = trigger.run()
    try:
        event = await asyncio.wait_for(agen.__anext__(), timeout)
    finally:
        await agen.aclose()
        await trigger.cleanup()
    return event.payload


def triggerer_stream_manager() -> Any:
    """What the installed Airflow's triggerer runs shared streams with: Airflow 3.3's
    ``SharedStreamManager``, or None before 3.3 (the triggerer calls ``run()``)."""
    manager_class = shared_stream_manager_class()
    return None if manager_class is None else manager_class()


async def first_event_via_shared_stream(
    manager: Any, trigger_id: int, trigger: Any, fired: dict[int, float]
) -> dict[str, Any]:
    """Run ``trigger`` as the triggerer does, until its first event; record when it fired in
    ``fired[trigger_id]``.

    With Airflow 3.3's ``SharedStreamManager`` (``manager``) the triggerer drives the shared
    stream itself; with ``manager=None`` (Airflow before 3.3) it calls ``run()``, and the
    provider's in-process fan-out shares the poll instead.
    """
    if manager is None:
        agen = trigger.run()
        try:
            event = await agen.__anext__()
            fired[trigger_id] = time.monotonic()
            return event.payload
        finally:
            await agen.aclose()
            await trigger.cleanup()
    key = trigger.shared_stream_key()
    stream = manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
    try:
        async for event in trigger.filter_shared_stream(stream):
            fired[trigger_id] = time.monotonic()
            return event.payload
    finally:
        await manager.unsubscribe(trigger_id, key)
    raise AssertionError("the shared stream ended")


def rebuild(trigger: Any) -> Any:
    """Serialize and rebuild a trigger, as the triggerer does from the database row."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


def run_sensor(make_sensor: Callable[[str], Any], mode: str, *, wall_timeout: float = 30.0) -> Any:
    """Run ``make_sensor(mode)`` to the end in ``mode``; return its XCom value or raise its exception.

    ``make_sensor`` is called again whenever Airflow would build a fresh operator instance
    (every reschedule, and on resume after deferral).
    """
    ti = FakeTI()
    if mode == "poke":
        return make_sensor("poke").execute(context_for(ti))
    if mode == "reschedule":
        prepare_metadata_database()
        count = 0
        deadline = time.monotonic() + wall_timeout
        while True:
            sensor = make_sensor("reschedule")
            poke_started = datetime.now(timezone.utc) if count else ti.start_date
            try:
                return sensor.execute(context_for(ti, task_reschedule_count=count))
            except AirflowRescheduleException as exc:
                ti.rescheduled(poke_started, exc.reschedule_date)
                count += 1
                if time.monotonic() > deadline:
                    raise AssertionError("reschedule loop did not finish") from exc
                # Stand-in for the scheduler waiting until the reschedule date.
                time.sleep(max(0.0, (exc.reschedule_date - datetime.now(timezone.utc)).total_seconds()))
    if mode == "deferrable":
        sensor = make_sensor("deferrable")
        try:
            sensor.execute(context_for(ti))
        except TaskDeferred as deferred:
            trigger = rebuild(deferred.trigger)
            payload = asyncio.run(first_trigger_event(trigger, wall_timeout))
            resumed = make_sensor("deferrable")
            return resumed.resume_execution(deferred.method_name, {"event": payload}, context_for(ti))
        raise AssertionError("a deferrable sensor must defer")
    raise ValueError(mode)
