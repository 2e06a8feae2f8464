"""Polytomic's vocabulary: sync kinds, event types, connection extras, secrets, seen ids."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from airflow_provider_polytomic.vocabulary import (
    DEFAULT_TIMEOUT,
    TERMINAL_EVENT_TYPES,
    ConnectionExtras,
    EventType,
    Outcome,
    SeenEventIds,
    check_sync_kind,
    classify,
    event_prefix,
    event_type_for_outcome,
    event_types_for,
    is_valid_webhook_secret,
    sync_api_root,
    sync_kind_of_event,
    sync_path,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("kind", "path", "root", "prefix"),
    [("model", "syncs", "/api/syncs", "sync."), ("bulk", "bulk/syncs", "/api/bulk/syncs", "bulk_sync.")],
)
def test_each_sync_kind_has_its_paths_and_event_prefix(kind: str, path: str, root: str, prefix: str) -> None:
    assert check_sync_kind(kind) == kind
    assert (sync_path(kind), sync_api_root(kind), event_prefix(kind)) == (path, root, prefix)
    types = event_types_for(kind)
    assert len(types) == 5 and all(t.startswith(prefix) for t in types)
    assert all(sync_kind_of_event(t) == kind for t in types)


@pytest.mark.parametrize("bad", ["Model", "", None, "bulk_sync", 1])
def test_an_unknown_sync_kind_is_refused_naming_the_field_and_value(bad: object) -> None:
    with pytest.raises(ValueError, match=r"sync_kind must be 'model' or 'bulk', got"):
        check_sync_kind(bad)
    with pytest.raises(ValueError, match=r"^kind must be"):
        check_sync_kind(bad, "kind")
    with pytest.raises(ValueError):
        sync_api_root(bad)  # type: ignore[arg-type]


def test_terminal_event_types_are_those_whose_outcome_ends_a_wait() -> None:
    assert set(TERMINAL_EVENT_TYPES) == {t for t in EventType.ALL if classify(t).is_terminal}
    assert len(TERMINAL_EVENT_TYPES) == 8
    assert event_types_for("model", terminal_only=True) == tuple(
        t for t in TERMINAL_EVENT_TYPES if t.startswith("sync.")
    )
    # Polytomic's own spelling differs between the kinds.
    assert event_type_for_outcome("model", Outcome.SUCCEEDED_WITH_ERRORS) == "sync.completed_with_errors"
    assert event_type_for_outcome("bulk", Outcome.SUCCEEDED_WITH_ERRORS) == "bulk_sync.completed_with_error"
    assert event_type_for_outcome("bulk", Outcome.RUNNING) == "bulk_sync.running"


def _conn(extra: object, conn_id: str = "polytomic_x") -> SimpleNamespace:
    return SimpleNamespace(conn_id=conn_id, extra_dejson=extra)


def test_extras_are_read_under_both_spellings_with_the_plain_name_winning() -> None:
    extras = ConnectionExtras.of(
        _conn({"extra__polytomic__timeout": "12", "extra__polytomic__scheme": "http", "scheme": "https"})
    )
    assert extras.timeout == 12.0
    assert extras.scheme == "https"
    assert extras.webhook_secret is None and extras.organization_id is None


def test_overrides_win_unless_none() -> None:
    extras = ConnectionExtras.of(_conn({"timeout": 5, "max_retries": 2}), timeout=9, max_retries=None)
    assert (extras.timeout, extras.max_retries) == (9.0, 2)
    assert ConnectionExtras.of(_conn({})).timeout == DEFAULT_TIMEOUT


def test_a_bad_extra_fails_only_when_read_naming_connection_field_and_value() -> None:
    extras = ConnectionExtras.of(
        _conn({"timeout": "soon", "max_retries": -1, "api_version": "v2", "scheme": "http"})
    )
    assert extras.scheme == "http"  # the other extras do not stop this one
    with pytest.raises(
        ValueError, match=r"Connection 'polytomic_x': extra 'timeout' must be a positive .*'soon'"
    ):
        _ = extras.timeout
    with pytest.raises(ValueError, match=r"extra 'max_retries' must be 0 or more, got -1"):
        _ = extras.max_retries
    with pytest.raises(ValueError, match=r"extra 'api_version' must look like YYYY-MM-DD, got 'v2'"):
        _ = extras.api_version
    with pytest.raises(ValueError, match=r"extra must be a JSON object"):
        ConnectionExtras.of(_conn(["not", "a", "dict"]))


def test_extras_never_print_their_values() -> None:
    extras = ConnectionExtras.of(_conn({"webhook_secret": "s3cr3t-value"}))
    assert extras.webhook_secret == "s3cr3t-value"
    assert "s3cr3t" not in repr(extras)


@pytest.mark.parametrize(
    ("secret", "ok"),
    [("a" * 5, False), ("a" * 6, True), ("a" * 32, True), ("a" * 33, False), (None, False), (123456, False)],
)
def test_webhook_secrets_are_6_to_32_characters(secret: object, ok: bool) -> None:
    assert is_valid_webhook_secret(secret) is ok


def test_seen_ids_are_new_once_and_forgotten_below_a_rising_floor() -> None:
    seen = SeenEventIds(T0)
    assert not seen.add("old", T0)  # at the floor: already covered
    assert seen.add("a", T0 + timedelta(seconds=1))
    assert not seen.add("a", T0 + timedelta(seconds=1))
    assert seen.add("b", T0 + timedelta(seconds=3))
    seen.raise_floor(T0 + timedelta(seconds=2))
    assert "a" not in seen and "b" in seen and len(seen) == 1
    assert seen.seen("a", T0 + timedelta(seconds=1))  # covered by the floor now
    seen.raise_floor(T0)  # never moves down
    assert seen.floor == T0 + timedelta(seconds=2)
    assert list(seen.times()) == [T0 + timedelta(seconds=3)]


def test_seen_ids_built_with_ids_keep_only_those_above_the_floor() -> None:
    seen = SeenEventIds(T0, {"under": T0, "over": T0 + timedelta(microseconds=1)})
    assert dict(seen.ids) == {"over": T0 + timedelta(microseconds=1)}
    assert SeenEventIds().add("any", datetime(1970, 1, 1, tzinfo=timezone.utc))
