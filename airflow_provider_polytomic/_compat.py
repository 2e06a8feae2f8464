"""Every Airflow import the provider makes goes through this module.

Supported: Airflow 2.11 and 3.0 to 3.3. Airflow 3 moved the authoring API into
``airflow.sdk`` over several releases: 3.0 still has ``BaseHook`` in ``airflow.hooks.base``,
and ``airflow.sdk.exceptions`` only gained the task exceptions in 3.2 (before, they live in
``airflow.exceptions``, and importing them from there warns only from 3.2 on). Airflow 2 has it
spread over ``airflow.models``, ``airflow.hooks`` and ``airflow.sensors``. Each name is
taken from its newest home first, so no supported version warns about a deprecated import.

Where the provider needs something Airflow offers no public API for, the one wrapper that
reaches into Airflow lives here too, and ``tests/unit/test_compat.py`` checks it against the
installed Airflow, so a change in Airflow fails a test instead of the provider.

The functions at the end give the test suite the few Airflow internals it drives (a
``DagBag``, the shared-stream manager...), so that tests, too, depend on Airflow's layout
only here.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version_string

if TYPE_CHECKING:
    from airflow.plugins_manager import AirflowPlugin
    from airflow.sdk import Connection
    from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent


def _parse_version(text: str) -> tuple[int, int, int]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


AIRFLOW_VERSION: tuple[int, int, int] = _parse_version(str(_airflow_version_string))
"""The installed Airflow's (major, minor, micro)."""

AIRFLOW_V_3 = AIRFLOW_VERSION >= (3, 0, 0)
AIRFLOW_V_3_3 = AIRFLOW_VERSION >= (3, 3, 0)
"""Airflow 3.3 added shared trigger streams and the asset state store."""

if AIRFLOW_V_3:
    from airflow.sdk import (
        Asset,
        AssetWatcher,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Context,
        ObjectStoragePath,
        PokeReturnValue,
    )

    try:
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 3.0
        from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
else:  # Airflow 2.11
    from airflow.datasets import Dataset as Asset  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.models import BaseOperator, BaseOperatorLink  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.utils.context import Context  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]

    AssetWatcher = None  # type: ignore[assignment,misc,unused-ignore]

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
except ImportError:  # Airflow 2.11 to 3.1: still in airflow.exceptions
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )


# Loaded when first named (PEP 562): the DAG processor imports every DAG file again and again,
# and no DAG file needs these. Only the triggers and the webhook plugin subclass the trigger
# and plugin classes, and Airflow 2's Connection is an ORM model that sets up its mapper.
_LAZY: dict[str, tuple[str, str]] = {
    "AirflowPlugin": ("airflow.plugins_manager", "AirflowPlugin"),
    "Connection": ("airflow.sdk", "Connection")
    if AIRFLOW_V_3
    else ("airflow.models.connection", "Connection"),
    "BaseTrigger": ("airflow.triggers.base", "BaseTrigger"),
    "TriggerEvent": ("airflow.triggers.base", "TriggerEvent"),
    # Airflow 2 has no event triggers: a plain trigger stands in (asset watchers need Airflow 3).
    "BaseEventTrigger": ("airflow.triggers.base", "BaseEventTrigger" if AIRFLOW_V_3 else "BaseTrigger"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def airflow_version() -> str:
    """Return the installed Airflow version string (used in the User-Agent)."""
    return str(_airflow_version_string)


def require_airflow(feature: str, minimum: tuple[int, int] = (3, 0)) -> None:
    """Raise a clear error when ``feature`` needs a newer Airflow than the installed one.

    :raises PolytomicAirflowVersionError: naming the feature, the version it needs and the
        installed version.
    """
    if AIRFLOW_VERSION[:2] >= minimum:
        return
    from airflow_provider_polytomic.exceptions import PolytomicAirflowVersionError

    raise PolytomicAirflowVersionError(feature, minimum, airflow_version())


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable`` setting."""
    from airflow.configuration import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def conf_get(section: str, key: str, fallback: Any = None) -> Any:
    """Read an Airflow configuration value, with a fallback."""
    from airflow.configuration import conf

    return conf.get(section, key, fallback=fallback)


async def aget_connection(conn_id: str) -> Any:
    """Read a connection without blocking the event loop.

    Airflow 3.1+ has ``BaseHook.aget_connection``; before that the synchronous lookup runs in
    a worker thread.
    """
    getter = getattr(BaseHook, "aget_connection", None)
    if getter is not None:
        return await getter(conn_id)
    return await asyncio.to_thread(BaseHook.get_connection, conn_id)


def first_reschedule_date(ti: Any, context: Any) -> datetime | None:
    """When a rescheduled sensor first started in this try, or None if Airflow does not say.

    Airflow 3 asks the API server (``ti.get_first_reschedule_date``). Airflow 2 has no such
    call, but it sets ``ti.start_date`` of a rescheduled task to the first reschedule's
    start, so callers fall back to ``ti.start_date``.
    """
    getter = getattr(ti, "get_first_reschedule_date", None)
    if getter is None:
        return None
    result: datetime | None = getter(context)
    return result


def link_xcom_key(link: Any) -> str | None:
    """The XCom key under which Airflow 3 stores an operator extra link's URL.

    Airflow 2 computes links when the UI asks and stores none: None there.
    """
    return getattr(link, "xcom_key", None) if AIRFLOW_V_3 else None


def is_xcom_arg(value: Any) -> bool:
    """Whether ``value`` is an ``XComArg`` (``task.output[...]``), which Airflow resolves
    before ``execute`` runs: an operator's constructor can check it only then."""
    if AIRFLOW_V_3:
        from airflow.sdk import XComArg
    else:
        from airflow.models.xcom_arg import XComArg  # type: ignore[attr-defined,no-redef,unused-ignore]
    return isinstance(value, XComArg)


def xcom_for_link(ti_key: Any, key: str) -> Any:
    """An XCom of the task instance an extra link is built for.

    Airflow 3 hands ``get_link`` the runtime task instance (``xcom_pull``); Airflow 2 hands it
    a ``TaskInstanceKey``, read with ``XCom.get_value``.
    """
    pull = getattr(ti_key, "xcom_pull", None)
    if pull is not None:
        map_index = getattr(ti_key, "map_index", -1)
        return pull(task_ids=ti_key.task_id, key=key, map_indexes=-1 if map_index is None else map_index)
    if AIRFLOW_V_3:
        return None
    from airflow.models.xcom import XCom  # type: ignore[attr-defined,unused-ignore]

    return XCom.get_value(ti_key=ti_key, key=key)


def asset_state_accessors(accessors: Any) -> list[Any] | None:
    """The per-asset accessors inside Airflow's ``AssetStateStoreAccessors`` (Airflow 3.3+).

    Airflow offers no public way to list them: its object is subscripted with an asset the
    caller must already know, which an asset watcher's trigger does not. This reads the two
    maps the object keeps, by name and by URI. ``tests/unit/test_compat.py`` builds a real
    ``AssetStateStoreAccessors`` and checks this against its public subscript, so a change in
    Airflow fails that test.

    :return: the accessors, or None when ``accessors`` is not Airflow's object (for example a
        single accessor, which callers use as it is).
    :raises RuntimeError: when it is Airflow's object but no longer has those maps.
    """
    if type(accessors).__name__ != "AssetStateStoreAccessors":
        return None
    try:
        by_name = accessors._by_name
        by_uri = accessors._by_uri
    except AttributeError:
        raise RuntimeError(
            f"Airflow {airflow_version()} changed AssetStateStoreAccessors; "
            "airflow_provider_polytomic._compat.asset_state_accessors needs updating"
        ) from None
    return [*by_name.values(), *by_uri.values()]


def attach_filesystem(protocol: str, fs: Any) -> Any:
    """Register an fsspec filesystem for ``ObjectStoragePath`` (``airflow.sdk.io.attach``)."""
    if AIRFLOW_V_3:
        from airflow.sdk.io import attach
    else:
        from airflow.io.store import attach  # type: ignore[no-redef,attr-defined,unused-ignore]
    return attach(protocol=protocol, fs=fs)


# ------------------------------------------------------------------ for the test suite


def dag_bag(dag_folder: str) -> Any:
    """A ``DagBag`` of ``dag_folder`` (in ``airflow.dag_processing`` since 3.2)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined,unused-ignore]
    return DagBag(dag_folder=dag_folder, safe_mode=False)


def serialize_round_trip(dag: Any) -> Any:
    """The DAG as the scheduler and UI see it: serialized, then deserialized."""
    try:
        from airflow.serialization.serialized_objects import DagSerialization

        return DagSerialization.from_dict(DagSerialization.to_dict(dag))
    except ImportError:  # Airflow < 3.2
        from airflow.serialization.serialized_objects import SerializedDAG

        return SerializedDAG.from_dict(SerializedDAG.to_dict(dag))  # type: ignore[attr-defined,unused-ignore]


def trigger_failure_resume() -> tuple[str, Any]:
    """What Airflow resumes a task with when its deferral timed out: (method, error value).

    Airflow 2's scheduler writes these literals (``SchedulerJobRunner``); Airflow 3 names them.
    """
    if not AIRFLOW_V_3:
        return "__fail__", "Trigger/execution timeout"
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

    return TRIGGER_FAIL_REPR, TriggerFailureReason.TRIGGER_TIMEOUT


def shared_stream_manager_class() -> Callable[[], Any] | None:
    """Airflow 3.3's ``SharedStreamManager`` (what the triggerer runs shared streams with), or None."""
    if not AIRFLOW_V_3_3:
        return None
    from airflow.triggers.shared_stream import SharedStreamManager

    return SharedStreamManager


_metadata_database_ready = False


def prepare_metadata_database() -> None:
    """Create the metadata database's tables once per process (Airflow 2 only).

    An Airflow 2 sensor in reschedule mode reads its first start from the database; an
    Airflow 3 task never touches the database.
    """
    global _metadata_database_ready
    if AIRFLOW_V_3 or _metadata_database_ready:
        return
    from airflow.utils.db import initdb  # type: ignore[attr-defined,unused-ignore]

    initdb()
    _metadata_database_ready = True


def record_airflow2_reschedule(ti: Any, start_date: datetime, reschedule_date: datetime) -> None:
    """Write what Airflow 2 writes when a sensor reschedules: a ``task_reschedule`` row (and
    the DAG run and task instance rows it refers to, the first time)."""
    from airflow import DAG  # type: ignore[attr-defined,unused-ignore]
    from airflow.models import DagRun, TaskInstance  # type: ignore[attr-defined,unused-ignore]
    from airflow.models.taskreschedule import TaskReschedule  # type: ignore[attr-defined,unused-ignore]
    from airflow.operators.empty import EmptyOperator  # type: ignore[import-not-found,unused-ignore]
    from airflow.utils.session import create_session  # type: ignore[attr-defined,unused-ignore]

    prepare_metadata_database()
    with create_session() as session:
        if session.query(DagRun).filter_by(dag_id=ti.dag_id, run_id=ti.run_id).first() is None:
            with DAG(ti.dag_id, start_date=start_date, schedule=None):
                task = EmptyOperator(task_id=ti.task_id)
            run: dict[str, Any] = {
                "dag_id": ti.dag_id,
                "run_id": ti.run_id,
                "execution_date": start_date,
                "run_type": "manual",
                "state": "running",
            }
            session.add(DagRun(**run))
            session.flush()
            row = TaskInstance(task, run_id=ti.run_id, map_index=ti.map_index)  # type: ignore[call-arg,unused-ignore]
            row.try_number = ti.try_number
            session.add(row)
            session.flush()
        session.add(
            TaskReschedule(  # type: ignore[call-arg,unused-ignore]
                ti.task_id,
                ti.dag_id,
                ti.run_id,
                ti.try_number,
                start_date,
                datetime.now(start_date.tzinfo),
                reschedule_date,
                ti.map_index,
            )
        )


def airflow2_extra_link(dag_folder: str, dag_id: str, run_id: str, task_id: str, name: str) -> Any:
    """Airflow 2: an extra link's URL as its webserver builds it (serialized task, task
    instance from the metadata database). Run in the environment of that Airflow home."""
    from airflow.models import DagBag, DagRun  # type: ignore[attr-defined,unused-ignore]
    from airflow.serialization.serialized_objects import SerializedDAG

    dag = DagBag(dag_folder=dag_folder).get_dag(dag_id)
    task = SerializedDAG.from_dict(SerializedDAG.to_dict(dag)).get_task(task_id)  # type: ignore[attr-defined,unused-ignore]
    (run,) = DagRun.find(dag_id=dag_id, run_id=run_id)  # type: ignore[attr-defined,unused-ignore]
    return task.get_extra_links(run.get_task_instance(task_id), name)


def asset_state_store_accessors(inlets: list[Any]) -> Any:
    """A real ``AssetStateStoreAccessors`` over ``inlets``, as the triggerer builds one (3.3+)."""
    from airflow.sdk.execution_time.context import AssetStateStoreAccessors

    return AssetStateStoreAccessors(inlets=inlets)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3",
    "AIRFLOW_V_3_3",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowPlugin",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "Asset",
    "AssetWatcher",
    "BaseEventTrigger",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Connection",
    "Context",
    "ObjectStoragePath",
    "PokeReturnValue",
    "TaskDeferred",
    "TriggerEvent",
    "aget_connection",
    "airflow_version",
    "asset_state_accessors",
    "attach_filesystem",
    "conf_get",
    "default_deferrable",
    "first_reschedule_date",
    "is_xcom_arg",
    "link_xcom_key",
    "require_airflow",
    "xcom_for_link",
]
