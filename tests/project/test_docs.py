"""The README stays short and its links resolve; the docs pages exist; the README's DAG
loads; the API-reference check (docs/check_reference.py, run by ``make docs``) reports
a public name that the built reference lacks."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import airflow_provider_polytomic
from airflow_provider_polytomic._compat import AIRFLOW_V_3, dag_bag

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(markdown: str) -> str:
    """``markdown`` without fenced code blocks (a link in code is not a link)."""
    return re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors (the docs build makes the same ones, myst_heading_anchors)."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", _prose(markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def _relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(_prose(path.read_text())) if not re.match(r"[a-z]+:", t)]


def _check_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_reference", DOCS / "check_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_reference"] = module
    spec.loader.exec_module(module)
    return module


def test_readme_is_at_most_200_lines() -> None:
    assert len(README.read_text().splitlines()) <= 200


def test_every_relative_link_of_the_readme_resolves() -> None:
    links = _relative_links(README)
    assert len(links) >= 10, links  # the docs pages, at least
    broken = []
    for link in links:
        target, _, anchor = link.partition("#")
        path = (ROOT / target) if target else README
        if not path.exists():
            broken.append(f"{link}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path.read_text()):
            broken.append(f"{link}: no heading with that anchor")
    assert broken == []


def test_the_link_check_sees_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[gone](missing.md) [web](https://example.com)\n```\n[code](x.md)\n```\n")
    assert _relative_links(page) == ["missing.md"]
    assert _anchors(page.read_text()) == {"title"}


def test_every_docs_page_is_in_the_table_of_contents_and_exists() -> None:
    index = (DOCS / "index.md").read_text()
    listed = set()
    for block in re.findall(r"```\{toctree\}(.*?)```", index, re.S):
        listed |= {line.strip() for line in block.splitlines() if line.strip() and not line.startswith(":")}
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert listed == pages
    for required in ("quickstart", "connection", "sensor", "run-sync", "record-logs", "testing", "api"):
        assert required in pages


def test_changelog_has_the_package_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(airflow_provider_polytomic.__version__)}\b", changelog, re.M)


@pytest.mark.skipif(not AIRFLOW_V_3, reason="the README's DAG imports DAG from airflow.sdk (Airflow 3)")
def test_the_readme_dag_loads(tmp_path: Path) -> None:
    code = re.search(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
    assert code
    (tmp_path / "readme_dag.py").write_text(code.group(1))
    bag = dag_bag(str(tmp_path))
    assert bag.import_errors == {}
    (dag,) = bag.dags.values()
    assert dag.get_task("record_logs").upstream_task_ids == {"run_sync"}


def test_the_reference_check_reports_a_missing_public_name() -> None:
    # The check imports every module, as the docs build does; that build runs in the
    # development venv, which has every extra (the OpenLineage module needs [openlineage]).
    pytest.importorskip("airflow.providers.openlineage", reason="needs the [openlineage] extra, as make docs")
    check = _check_reference()
    everything = set(check.missing_names(set()))
    fake = "airflow_provider_polytomic.testing.FakePolytomic"
    assert {fake, "airflow_provider_polytomic.sensors.polytomic.PolytomicSyncSensor"} <= everything
    # Private modules and names (a leading underscore, dunders aside) are not required.
    assert not any(re.search(r"\._[^_]", name) for name in everything)
    assert check.missing_names(everything - {fake}) == [fake]
    assert check.missing_names(everything) == []
