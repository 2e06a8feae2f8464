"""Operator extra link from an Airflow task to the Polytomic execution it ran or waited on.

URL pattern - an ASSUMPTION
---------------------------
Polytomic does not document the URLs of its web app. The default pattern mirrors the
API paths without ``/api``::

    model sync: {base_url}/syncs/{sync_id}/executions/{execution_id}
    bulk sync:  {base_url}/bulk/syncs/{sync_id}/executions/{execution_id}

where ``base_url`` is the connection's host (``https://app.polytomic.com`` by default, so
on-prem deployments link to themselves). If the pattern is wrong for your deployment, set
the connection extra ``execution_url_template``, a Python format string with the fields
``{base_url}``, ``{sync_id}``, ``{execution_id}``, ``{sync_kind}`` (``model``/``bulk``) and
``{sync_path}`` (``syncs``/``bulk/syncs``), for example::

    {"execution_url_template": "{base_url}/{sync_path}/{sync_id}?execution={execution_id}"}
"""

from __future__ import annotations

import logging
from string import Formatter
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_polytomic._compat import BaseHook, BaseOperatorLink, xcom_for_link
from airflow_provider_polytomic.client import build_base_url
from airflow_provider_polytomic.vocabulary import ConnectionExtras, check_sync_kind, sync_path

log = logging.getLogger(__name__)

DEFAULT_EXECUTION_URL_TEMPLATE = "{base_url}/{sync_path}/{sync_id}/executions/{execution_id}"
"""The assumed pattern of Polytomic's execution pages (see the module docstring)."""

TEMPLATE_EXTRA = "execution_url_template"
"""Connection extra overriding :data:`DEFAULT_EXECUTION_URL_TEMPLATE`."""

XCOM_EXECUTION_ID = "execution_id"
"""XCom key under which the run-sync operator pushes the execution id before waiting."""

XCOM_EXECUTION_URL = "execution_url"
"""XCom key under which the run-sync operator pushes the execution page URL before waiting."""

_FIELDS = frozenset({"base_url", "sync_id", "execution_id", "sync_kind", "sync_path"})


def _template_fields(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{TEMPLATE_EXTRA} {template!r} is not a valid format string: {exc}") from None


def build_execution_url(
    base_url: str,
    sync_id: str,
    execution_id: str,
    *,
    sync_kind: str = "model",
    template: str | None = None,
) -> str:
    """Format the URL of an execution page.

    :param base_url: the Polytomic web app's origin (the connection host), no trailing slash needed.
    :param template: a format string (default :data:`DEFAULT_EXECUTION_URL_TEMPLATE`).
    :raises ValueError: unknown template fields, or a result that is not an http(s) URL.
    """
    template = template or DEFAULT_EXECUTION_URL_TEMPLATE
    unknown = _template_fields(template) - _FIELDS
    if unknown:
        raise ValueError(
            f"{TEMPLATE_EXTRA} uses unknown fields {sorted(unknown)}; allowed: {sorted(_FIELDS)}"
        )
    url = template.format(
        base_url=base_url.rstrip("/"),
        sync_id=quote(str(sync_id), safe=""),
        execution_id=quote(str(execution_id), safe=""),
        sync_kind=check_sync_kind(sync_kind),
        sync_path=sync_path(sync_kind),
    )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{TEMPLATE_EXTRA} must produce an http(s) URL, got {url!r}")
    return url


def execution_url_for_connection(
    polytomic_conn_id: str, sync_id: str, execution_id: str, *, sync_kind: str = "model"
) -> str:
    """The execution page URL on the deployment of an Airflow ``polytomic`` connection.

    Reads only the connection's host, port and the ``execution_url_template`` extra; never the key.
    """
    conn = BaseHook.get_connection(polytomic_conn_id)
    extras = ConnectionExtras.of(conn)
    base_url = build_base_url(conn.host, getattr(conn, "port", None), extras.scheme)
    return build_execution_url(
        base_url, sync_id, execution_id, sync_kind=sync_kind, template=extras.execution_url_template
    )


class PolytomicExecutionLink(BaseOperatorLink):
    """ "Polytomic execution": links a task to the Polytomic execution it started or waited on.

    Works on :class:`~airflow_provider_polytomic.operators.sync.PolytomicRunSyncOperator`
    and :class:`~airflow_provider_polytomic.sensors.polytomic.PolytomicSyncSensor`. The URL
    comes, in order, from the ``execution_url`` XCom (pushed by the operator before it
    waits), from the ids in the task's return value (the sensor's summary), or from the
    task's own ``sync_id``/``execution_id`` attributes. Returns ``""`` when there is no
    execution to link to yet.

    In Airflow 3 the task runner calls :meth:`get_link` when the task finishes and stores
    the URL in XCom under :attr:`xcom_key`; the operator also stores it before waiting so
    the link works while the task is deferred. Airflow 2 calls :meth:`get_link` whenever the
    UI shows the task, with a ``TaskInstanceKey``; the XComs are then read from the
    metadata database. See the module docstring for the URL pattern, which is an assumption.
    """

    name = "Polytomic execution"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """Return the execution page URL, or ``""`` when it cannot be determined."""
        try:
            return self._link(operator, ti_key)
        except Exception as exc:
            # Never break task finalization because of a link.
            log.warning("Could not build the Polytomic execution link: %s", exc)
            return ""

    def _link(self, operator: Any, ti_key: Any) -> str:
        url = xcom_for_link(ti_key, XCOM_EXECUTION_URL)
        if isinstance(url, str) and url:
            return url
        sync_id: Any = None
        execution_id: Any = None
        returned = xcom_for_link(ti_key, "return_value")
        if isinstance(returned, dict):
            sync_id = returned.get("sync_id")
            execution_id = returned.get("execution_id")
        sync_id = sync_id or getattr(operator, "sync_id", None)
        execution_id = execution_id or getattr(operator, "execution_id", None)
        if not (isinstance(sync_id, str) and sync_id and isinstance(execution_id, str) and execution_id):
            return ""
        return execution_url_for_connection(
            getattr(operator, "polytomic_conn_id", None) or "polytomic_default",
            sync_id,
            execution_id,
            sync_kind=getattr(operator, "sync_kind", None) or "model",
        )


__all__ = [
    "DEFAULT_EXECUTION_URL_TEMPLATE",
    "TEMPLATE_EXTRA",
    "XCOM_EXECUTION_ID",
    "XCOM_EXECUTION_URL",
    "PolytomicExecutionLink",
    "build_execution_url",
    "execution_url_for_connection",
]
