"""Executions (runs of a sync): the store, its listings and status summaries, and console logs.

State changes that emit events (start, complete, fail, cancel) live in :mod:`.lifecycle`.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..records import TERMINAL_STATUSES, FakeApiError, SyncKind
from .context import Org
from .syncs import Sync

__all__ = ["ENGINE_VERSION", "EXECUTIONS_PAGE_SIZE", "ConsoleEntry", "Execution", "ExecutionsBackend"]

EXECUTIONS_PAGE_SIZE = 50
"""Page size of the executions lists (bulk: default of ``limit``)."""
ENGINE_VERSION = "2025.11.3"
"""An execution's ``version``: which Polytomic release ran it (the value's format is not documented)."""


def _zero_counts() -> dict[str, int]:
    return {"total": 0, "insert": 0, "update": 0, "delete": 0, "upserts": 0, "error": 0, "warnings": 0}


@dataclass(frozen=True)
class ConsoleEntry:
    """One console-log line of an execution (``schema``: the bulk schema it concerns, if any)."""

    id: str
    level: str
    message: str
    payload: dict[str, Any]
    timestamp: datetime
    schema: str | None = None


@dataclass
class Execution:
    id: str
    sync_id: str
    kind: SyncKind
    seq: int
    created_at: datetime
    status: str = "created"
    type: str = "manual"
    trigger: str = "manual"
    started_at: datetime | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=_zero_counts)
    errors: list[str] = field(default_factory=list)
    status_message: str | None = None
    is_test: bool = False
    is_resync: bool = False
    fetch_mode: str = "none"
    logs: dict[str, list[str]] = field(default_factory=dict)
    """Record-log file tokens per log type."""
    schemas: list[str] = field(default_factory=list)
    """Bulk: the schemas this execution copies."""
    console: list[ConsoleEntry] = field(default_factory=list)
    version: str = ENGINE_VERSION


class ExecutionsBackend:
    """Every execution of every sync, and the API's read-side views of them."""

    def __init__(self, org: Org) -> None:
        """No executions yet."""
        self._org = org
        self._executions: dict[str, Execution] = {}

    # -- store ---------------------------------------------------------------------------------

    def add(self, sync: Sync, *, trigger: str) -> Execution:
        """A new ``created`` execution of ``sync``."""
        org = self._org
        with org.lock:
            now = org.now()
            execution = Execution(
                id=str(uuid.uuid4()),
                sync_id=sync.id,
                kind=sync.kind,
                seq=org.next_seq(),
                created_at=now,
                updated_at=now,
                trigger=trigger,
                schemas=[s.id for s in sync.schemas if s.enabled],
            )
            self._executions[execution.id] = execution
            self.log(execution, "info", "Execution created", {"trigger": trigger})
            return execution

    def get(self, sync_id: str, execution_id: str) -> Execution:
        """One execution of ``sync_id``; KeyError when unknown."""
        with self._org.lock:
            execution = self._executions.get(execution_id)
        if execution is None or execution.sync_id != sync_id:
            raise KeyError(f"unknown execution {execution_id!r} of sync {sync_id!r}")
        return execution

    def api_get(self, sync_id: str, execution_id: str) -> Execution:
        """One execution of ``sync_id``; a 404 API error when unknown."""
        try:
            return self.get(sync_id, execution_id)
        except KeyError:
            raise FakeApiError(404, f"execution {execution_id} not found") from None

    def of_sync(self, sync_id: str, *, ascending: bool = True) -> list[Execution]:
        """The executions of one sync by creation time."""
        with self._org.lock:
            rows = [e for e in self._executions.values() if e.sync_id == sync_id]
        rows.sort(key=lambda e: (e.created_at, e.seq), reverse=not ascending)
        return rows

    def active(self, sync_id: str) -> list[Execution]:
        """The executions of one sync that have not reached a terminal status, oldest first."""
        return [e for e in self.of_sync(sync_id) if e.status not in TERMINAL_STATUSES]

    def set_status(self, execution: Execution, status: str) -> None:
        """Move ``execution`` to ``status`` (a terminal status also sets ``completed_at``)."""
        now = self._org.now()
        with self._org.lock:
            execution.status = status
            execution.updated_at = now
            if status in TERMINAL_STATUSES and execution.completed_at is None:
                execution.completed_at = now

    # -- API views -----------------------------------------------------------------------------

    def status(self, sync: Sync) -> tuple[Execution | None, Execution | None]:
        """The current (active) and last (terminal) executions of ``sync``."""
        newest = self.of_sync(sync.id, ascending=False)
        current = next((e for e in newest if e.status not in TERMINAL_STATUSES), None)
        last = next((e for e in newest if e.status in TERMINAL_STATUSES), None)
        return current, last

    def page(
        self,
        sync: Sync,
        *,
        page_token: str | None,
        ascending: bool,
        only_terminal: bool,
        limit: int = EXECUTIONS_PAGE_SIZE,
    ) -> tuple[list[Execution], str | None]:
        """One page of a sync's executions and the next page's token (None on the last page).

        Model syncs order by creation; a bulk listing of terminal executions orders by
        ``updated_at``, as Polytomic documents.
        """
        offset = 0
        if page_token:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(page_token.encode() + b"=="))
                offset = int(decoded["o"])
                if offset < 0 or decoded.get("s") != sync.id:
                    raise ValueError(page_token)
            except (ValueError, KeyError, TypeError):
                raise FakeApiError(400, "invalid page_token") from None
        rows = self.of_sync(sync.id, ascending=ascending)
        if only_terminal:
            rows = [e for e in rows if e.status in TERMINAL_STATUSES]
            if sync.kind == "bulk":
                rows.sort(key=lambda e: (e.updated_at or e.created_at, e.seq), reverse=not ascending)
        token = None
        if offset + limit < len(rows):
            raw = json.dumps({"o": offset + limit, "s": sync.id}).encode()
            token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return rows[offset : offset + limit], token

    def schema_statuses(self, sync: Sync) -> list[tuple[str, Execution]]:
        """Per schema of a bulk sync, the execution that best tells what it is doing now:
        a running one first, else the most recent (Polytomic's ``/bulk/syncs/status`` rule)."""
        newest = self.of_sync(sync.id, ascending=False)
        out = []
        for schema in sync.schemas:
            runs = [e for e in newest if schema.id in e.schemas]
            chosen = next((e for e in runs if e.status not in TERMINAL_STATUSES), runs[0] if runs else None)
            if chosen is not None:
                out.append((schema.id, chosen))
        return out

    # -- console logs --------------------------------------------------------------------------

    def log(
        self,
        execution: Execution,
        level: str,
        message: str,
        payload: dict[str, Any] | None = None,
        schema: str | None = None,
    ) -> None:
        """Append a console-log line to ``execution``."""
        with self._org.lock:
            entry = ConsoleEntry(
                f"{self._org.next_seq():012d}", level, message, dict(payload or {}), self._org.now(), schema
            )
            execution.console.append(entry)

    def console_page(
        self, execution: Execution, *, limit: int, after: str | None, schema: str | None = None
    ) -> tuple[list[ConsoleEntry], str]:
        """Console-log entries and the cursor to ask for newer ones.

        Without ``after``: the latest ``limit`` entries (Polytomic: "the most recent 50").
        With ``after``: the entries newer than that cursor, oldest first, at most ``limit``.
        Entries come oldest first either way.
        """
        with self._org.lock:
            known = not after or any(e.id == after for e in execution.console)
            entries = [e for e in execution.console if schema is None or e.schema in (None, schema)]
        if not known:
            raise FakeApiError(400, f"invalid cursor {after!r}")
        chosen = [e for e in entries if e.id > after][:limit] if after else entries[-limit:]
        cursor = chosen[-1].id if chosen else (after or (entries[-1].id if entries else ""))
        return chosen, cursor
