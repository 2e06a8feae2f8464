"""Build script for the optional C extension; all other metadata lives in pyproject.toml.

``airflow_provider_polytomic._record_scan`` counts record-log records with the GIL released
(see ``RecordCounter``). It is ``optional``: without a C compiler the build skips it and the
package counts the same records in pure Python, more slowly
(``airflow_provider_polytomic.record_logs.NATIVE_COUNTING`` tells which is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "airflow_provider_polytomic._record_scan",
            sources=["airflow_provider_polytomic/_record_scan.c"],
            optional=True,
        )
    ]
)
