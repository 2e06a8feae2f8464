"""PolytomicExecutionLink: URL building, the connection's template override, and where ids come from."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_polytomic._compat import AIRFLOW_V_3, link_xcom_key
from airflow_provider_polytomic.links.polytomic import (
    DEFAULT_EXECUTION_URL_TEMPLATE,
    PolytomicExecutionLink,
    build_execution_url,
    execution_url_for_connection,
)
from airflow_provider_polytomic.operators.sync import PolytomicRunSyncOperator
from airflow_provider_polytomic.sensors.polytomic import PolytomicSyncSensor


class TIKey:
    """What Airflow 3 passes as ``ti_key`` when it finalizes a task: the runtime task instance.

    (Airflow 2 passes a ``TaskInstanceKey`` and the link reads the metadata database; the
    Airflow 2 end-to-end test checks that path on a real ``airflow dags test`` run.)
    """

    def __init__(self, xcoms: dict[str, Any] | None = None, map_index: int = -1) -> None:
        self.dag_id = "dag"
        self.task_id = "task"
        self.run_id = "run"
        self.map_index = map_index
        self.xcoms = xcoms or {}
        self.pulls: list[dict[str, Any]] = []

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **kwargs: Any) -> Any:
        self.pulls.append({"task_ids": task_ids, "key": key, **kwargs})
        return self.xcoms.get(key)


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, host: str | None, **extra: Any) -> None:
    conn: dict[str, Any] = {"conn_type": "polytomic", "password": "secret-key-123456"}
    if host is not None:
        conn["host"] = host
    if extra:
        conn["extra"] = extra
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def test_default_pattern_for_model_and_bulk() -> None:
    assert DEFAULT_EXECUTION_URL_TEMPLATE == "{base_url}/{sync_path}/{sync_id}/executions/{execution_id}"
    assert build_execution_url("https://app.polytomic.com/", "s1", "e1") == (
        "https://app.polytomic.com/syncs/s1/executions/e1"
    )
    assert build_execution_url("https://app.polytomic.com", "s1", "e1", sync_kind="bulk") == (
        "https://app.polytomic.com/bulk/syncs/s1/executions/e1"
    )


def test_ids_are_escaped() -> None:
    url = build_execution_url("https://p.example", "a/b?c", "e#1")
    assert url == "https://p.example/syncs/a%2Fb%3Fc/executions/e%231"


def test_custom_template() -> None:
    url = build_execution_url(
        "https://p.example",
        "s1",
        "e1",
        sync_kind="bulk",
        template="{base_url}/x/{sync_kind}/{sync_id}#{execution_id}",
    )
    assert url == "https://p.example/x/bulk/s1#e1"


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("{base_url}/{nope}", "unknown fields"),
        ("javascript:alert({sync_id})", "http"),
        ("{base_url", "not a valid format string"),
    ],
)
def test_bad_templates_are_refused(template: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_execution_url("https://p.example", "s1", "e1", template=template)


def test_connection_host_on_prem_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "onprem", "https://polytomic.acme.internal/")
    assert (
        execution_url_for_connection("onprem", "s", "e")
        == "https://polytomic.acme.internal/syncs/s/executions/e"
    )
    set_conn(monkeypatch, "cloud", None)
    assert execution_url_for_connection("cloud", "s", "e") == "https://app.polytomic.com/syncs/s/executions/e"


def test_connection_template_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch,
        "custom",
        "polytomic.acme.internal",
        execution_url_template="{base_url}/runs/{execution_id}",
    )
    assert execution_url_for_connection("custom", "s", "e") == "https://polytomic.acme.internal/runs/e"
    # The form of older Airflow versions prefixes extras.
    set_conn(
        monkeypatch,
        "legacy",
        "h.example",
        extra__polytomic__execution_url_template="{base_url}/r/{execution_id}",
    )
    assert execution_url_for_connection("legacy", "s", "e") == "https://h.example/r/e"


def test_get_link_prefers_the_pushed_url(monkeypatch: pytest.MonkeyPatch) -> None:
    op = PolytomicRunSyncOperator(task_id="task", sync_id="s1", polytomic_conn_id="missing_conn")
    ti_key = TIKey({"execution_url": "https://p.example/syncs/s1/executions/e1"})
    assert PolytomicExecutionLink().get_link(op, ti_key=ti_key) == "https://p.example/syncs/s1/executions/e1"
    assert ti_key.pulls[0]["task_ids"] == "task"
    assert ti_key.pulls[0]["map_indexes"] == -1


def test_get_link_from_sensor_return_value(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "polytomic_default", "https://p.example")
    sensor = PolytomicSyncSensor(task_id="task", sync_id="s1", sync_kind="bulk")
    ti_key = TIKey(
        {"return_value": {"sync_id": "s1", "execution_id": "e9", "status": "completed"}}, map_index=3
    )
    assert (
        PolytomicExecutionLink().get_link(sensor, ti_key=ti_key)
        == "https://p.example/bulk/syncs/s1/executions/e9"
    )
    assert all(p["map_indexes"] == 3 for p in ti_key.pulls)


def test_get_link_from_sensor_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "polytomic_default", "https://p.example")
    sensor = PolytomicSyncSensor(task_id="task", sync_id="s1", execution_id="e2")
    assert (
        PolytomicExecutionLink().get_link(sensor, ti_key=TIKey())
        == "https://p.example/syncs/s1/executions/e2"
    )


def test_get_link_empty_when_unknown_or_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = PolytomicSyncSensor(task_id="task", sync_id="s1")
    assert PolytomicExecutionLink().get_link(sensor, ti_key=TIKey()) == ""
    # A missing connection never breaks task finalization.
    broken = PolytomicSyncSensor(task_id="task", sync_id="s1", execution_id="e1", polytomic_conn_id="nope")
    assert PolytomicExecutionLink().get_link(broken, ti_key=TIKey()) == ""


def test_link_identity() -> None:
    link = PolytomicExecutionLink()
    assert link.name == "Polytomic execution"
    # Airflow 3 stores the URL in XCom under this key; Airflow 2 builds links on demand.
    assert link_xcom_key(link) == ("_link_PolytomicExecutionLink" if AIRFLOW_V_3 else None)
    assert link == PolytomicExecutionLink()
