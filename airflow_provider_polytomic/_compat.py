"""Every Airflow import the provider makes goes through this module.

Airflow 3 exposes the authoring API in ``airflow.sdk``; Airflow 2 had it spread over
``airflow.models``, ``airflow.hooks`` and ``airflow.sensors``. Keeping the choice in one
place means 2.x support is a change to this file alone.
"""

from __future__ import annotations

from typing import Any

try:  # Airflow 3.x
    from airflow.sdk import (
        Asset,
        BaseHook,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
        Connection,
        Context,
        ObjectStoragePath,
        PokeReturnValue,
    )
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )

    AIRFLOW_V_3 = True
except ImportError:  # pragma: no cover - Airflow 2.x
    from airflow.datasets import Dataset as Asset  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.models import BaseOperator, BaseOperatorLink, Connection  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]
    from airflow.utils.context import Context  # type: ignore[no-redef,attr-defined,assignment,unused-ignore]

    AIRFLOW_V_3 = False

from airflow.plugins_manager import AirflowPlugin
from airflow.triggers.base import BaseTrigger, TriggerEvent

try:
    from airflow.sdk import AssetWatcher
except ImportError:  # pragma: no cover - Airflow 2 has no asset watchers
    AssetWatcher = None  # type: ignore[assignment,misc]

try:
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # pragma: no cover - Airflow < 3.0
    BaseEventTrigger = BaseTrigger  # type: ignore[misc,assignment]


def airflow_version() -> str:
    """Return the installed Airflow version string (used in the User-Agent)."""
    try:
        from airflow import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - defensive
        return "unknown"


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable`` setting."""
    from airflow.configuration import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def conf_get(section: str, key: str, fallback: Any = None) -> Any:
    """Read an Airflow configuration value, with a fallback."""
    from airflow.configuration import conf

    return conf.get(section, key, fallback=fallback)


__all__ = [
    "AIRFLOW_V_3",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowPlugin",
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
    "airflow_version",
    "conf_get",
    "default_deferrable",
]
