"""How the backends are wired together: who records events, who publishes them to the webhook."""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import CatalogBackend
from .context import Org
from .events import EventsBackend
from .executions import ExecutionsBackend
from .idempotency import IdempotencyBackend
from .jobs import JobsBackend
from .lifecycle import Lifecycle
from .record_logs import RecordLogsBackend
from .syncs import SyncsBackend
from .webhooks import WebhooksBackend

__all__ = ["Backends", "build_backends"]


@dataclass(frozen=True)
class Backends:
    """One backend per resource; routers and the facade call these."""

    catalog: CatalogBackend
    syncs: SyncsBackend
    executions: ExecutionsBackend
    lifecycle: Lifecycle
    events: EventsBackend
    webhooks: WebhooksBackend
    record_logs: RecordLogsBackend
    jobs: JobsBackend
    idempotency: IdempotencyBackend


def build_backends(org: Org, *, retry_base_delay: float = 0.05) -> Backends:
    """Every backend of ``org``: events are published to the webhook as they are recorded, and
    execution transitions record events and write record logs."""
    catalog = CatalogBackend(org)
    syncs = SyncsBackend(org, catalog)
    executions = ExecutionsBackend(org)
    webhooks = WebhooksBackend(org, retry_base_delay=retry_base_delay)
    events = EventsBackend(org, webhooks.publish)
    record_logs = RecordLogsBackend(org)
    return Backends(
        catalog=catalog,
        syncs=syncs,
        executions=executions,
        lifecycle=Lifecycle(org, syncs, executions, events, record_logs),
        events=events,
        webhooks=webhooks,
        record_logs=record_logs,
        jobs=JobsBackend(org),
        idempotency=IdempotencyBackend(org),
    )
