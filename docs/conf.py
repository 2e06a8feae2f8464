"""Sphinx configuration of the airflow-provider-polytomic documentation (``make docs``).

The API reference is generated from the package itself (autosummary, recursive), so modules
that are added, split or renamed show up without editing the docs.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from sphinx.pycode import ModuleAnalyzer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# autodoc imports the package, which imports Airflow: keep Airflow's files out of ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="polytomic-provider-docs-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

import airflow_provider_polytomic  # noqa: E402

project = "airflow-provider-polytomic"
author = "airflow-provider-polytomic contributors"
copyright = "airflow-provider-polytomic contributors"
release = version = airflow_provider_polytomic.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_templates"]
templates_path = ["_templates"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = True
# Submodules are listed whatever a package's __all__ says (it names what to import, not what exists).
autosummary_ignore_module_all = True


def _unlisted(module_name: str) -> list[tuple[str, str]]:
    """What autodoc's ``automodule`` leaves out of a module's page, as (directive, name):

    * public classes and functions the module defines but leaves out of its ``__all__``
      (helpers that other modules of the package import);
    * constants and type aliases its ``__all__`` lists that have no doc comment (autodoc
      documents module data only when it has one).

    The module template documents these after the ``automodule`` members, so every public
    name is in the reference (``docs/check_reference.py`` checks that after the build).
    """
    module = importlib.import_module(module_name)
    listed = getattr(module, "__all__", None)
    if listed is None:  # autodoc documents every public class and function already
        return []
    documented_data = {name for _, name in ModuleAnalyzer.for_module(module_name).find_attr_docs()}
    found = []
    for name, obj in vars(module).items():
        if name.startswith("_") or name in listed or getattr(obj, "__module__", None) != module_name:
            continue
        if inspect.isclass(obj):
            found.append(("autoexception" if issubclass(obj, BaseException) else "autoclass", name))
        elif inspect.isfunction(obj):
            found.append(("autofunction", name))
    for name in listed:
        obj = getattr(module, name)
        is_data = not (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj))
        if is_data and name not in documented_data:
            found.append(("autodata", name))
    return found


autosummary_context = {"unlisted": _unlisted}
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# Warnings are errors (make docs), and -n checks every cross-reference. References to this
# package must resolve; names from other libraries (Airflow, pydantic, the standard library,
# ...) in signatures cannot without fetching their inventories over the network, so they
# are left unlinked.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!airflow_provider_polytomic\.).*"),
    # Private names (a leading underscore) are not documented, nor are type variables.
    (r"py:.*", r"airflow_provider_polytomic\..*\._\w*(\..*)?"),
    (r"py:.*", r"airflow_provider_polytomic\..*\.[A-Z]"),
]
# config.cache: autosummary_context holds a function, so Sphinx cannot cache it (it re-reads
# the configuration on every build instead).
# ref.python: a name exported by a package is documented twice (under the package and under the module
# that defines it), and a few short names exist in two modules (``Execution``: the API model
# and the fake's record). References to them still link; Sphinx warns that it picked one.
suppress_warnings = ["ref.python", "config.cache"]

html_theme = "furo"
html_title = f"airflow-provider-polytomic {release}"
html_static_path: list[str] = []


def _drop_type_docstrings(
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """A constant without a doc comment would show its type's docstring (``dict()`` ->
    new empty dictionary...); show none instead."""
    if what == "data" and lines:
        type_doc = inspect.cleandoc(type(obj).__doc__ or "")
        if type_doc and "\n".join(lines).strip() == type_doc.strip():
            lines.clear()


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _drop_type_docstrings)
