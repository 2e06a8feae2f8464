"""Pytest plugin: no API key or webhook secret used by the tests may appear in their output.

Enable it in ``tests/conftest.py``::

    pytest_plugins = [..., "tests.secret_audit"]

What is a secret: the fake server's default key, the ``api_key`` of every
:class:`~airflow_provider_polytomic.testing.PolytomicState` / ``FakePolytomic`` created, every
webhook secret stored in a fake (through the API or directly), and the password /
``api_key`` / ``webhook_secret`` of every ``AIRFLOW_CONN_*`` connection set while a test
ran. Values shorter than :data:`MIN_SECRET_LENGTH` are ignored (too likely to collide).

What is scanned, for every test and every phase (setup, call, teardown): the captured
stdout, stderr and log sections of its report and the text of any exception it raised
(the exception lines, not the test's source: a test may well *mention* a secret in an
assertion). Output that pytest does not capture (``-s``, ``-p no:logging`` for logs) is not
seen. Each report is scanned as it arrives, against the secrets known at that moment.

At the end of the session a leak fails the run (exit status 1) with one line per leak: the
test, the section, and the secret masked (its first and last characters and length).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

DEFAULT_FAKE_KEY = "fake-api-key-0123456789"
MIN_SECRET_LENGTH = 8
_SECRET_EXTRAS = ("api_key", "webhook_secret", "password", "secret", "extra__polytomic__api_key")


@dataclass(frozen=True)
class Leak:
    nodeid: str
    where: str
    masked: str


def mask(secret: str) -> str:
    """Enough to recognise a secret in a report without printing it."""
    return f"{secret[:3]}…{secret[-2:]} ({len(secret)} chars)"


class SecretAudit:
    """Collects secrets and leaks for one pytest session."""

    def __init__(self) -> None:
        self.secrets: set[str] = {DEFAULT_FAKE_KEY}
        self.leaks: list[Leak] = []
        self.scanned = 0
        self._undo: list[tuple[Any, str, Any]] = []

    # -- secrets -------------------------------------------------------------------------

    def add(self, value: Any) -> None:
        if isinstance(value, str) and len(value.strip()) >= MIN_SECRET_LENGTH:
            self.secrets.add(value.strip())

    def collect_environment(self, environ: Iterable[tuple[str, str]] | None = None) -> None:
        for name, value in environ if environ is not None else list(os.environ.items()):
            if name.startswith("AIRFLOW_CONN_"):
                for secret in connection_secrets(value):
                    self.add(secret)

    def install_fake_hooks(self) -> None:
        """Register the key of every fake Polytomic and every webhook secret stored in one."""
        try:
            from airflow_provider_polytomic.testing.backends.webhooks import WebhooksBackend
            from airflow_provider_polytomic.testing.state import PolytomicState
        except Exception:  # pragma: no cover - the provider is not importable
            return
        audit = self

        def wrap(owner: type, name: str, grab: Any) -> None:
            original = getattr(owner, name)

            def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                result = original(self, *args, **kwargs)
                grab(self, args, kwargs, result)
                return result

            wrapper.__wrapped__ = original  # type: ignore[attr-defined]
            setattr(owner, name, wrapper)
            self._undo.append((owner, name, original))

        wrap(PolytomicState, "__init__", lambda state, _a, _k, _r: audit.add(getattr(state, "api_key", None)))

        def grab_webhook(_backend: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
            # Every webhook, created through the API or directly, goes through the backend.
            for body in (*args, *kwargs.values()):
                if isinstance(body, dict):
                    audit.add(body.get("secret"))
            audit.add(getattr(result, "secret", None))

        wrap(WebhooksBackend, "create", grab_webhook)
        wrap(WebhooksBackend, "update", grab_webhook)

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()

    # -- scanning ------------------------------------------------------------------------

    def scan(self, nodeid: str, where: str, text: str) -> None:
        if not text:
            return
        self.scanned += 1
        for secret in sorted(self.secrets):
            leak = Leak(nodeid, where, mask(secret))
            if secret in text and leak not in self.leaks:
                self.leaks.append(leak)

    def scan_report(self, report: pytest.TestReport) -> None:
        for title, content in report.sections:
            self.scan(report.nodeid, title, content)
        for where, text in exception_texts(report):
            self.scan(report.nodeid, where, text)


def connection_secrets(value: str) -> Iterator[str]:
    """Secrets of an ``AIRFLOW_CONN_*`` value (JSON or URI form)."""
    value = value.strip()
    if value.startswith("{"):
        try:
            conn = json.loads(value)
        except ValueError:
            return
        if not isinstance(conn, dict):
            return
        if isinstance(conn.get("password"), str):
            yield conn["password"]
        extra = conn.get("extra")
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError:
                extra = None
        if isinstance(extra, dict):
            for key in _SECRET_EXTRAS:
                if isinstance(extra.get(key), str):
                    yield extra[key]
        return
    try:
        parts = urlsplit(value)
    except ValueError:
        return
    if parts.password:
        yield unquote(parts.password)


def exception_texts(report: pytest.TestReport) -> Iterator[tuple[str, str]]:
    """The exception text of a failed report: messages and ``E`` lines, never source lines."""
    longrepr = report.longrepr
    if longrepr is None:
        return
    if isinstance(longrepr, tuple):  # skipped: (path, line, reason)
        yield f"skip reason ({report.when})", str(longrepr[-1])
        return
    chain = getattr(longrepr, "chain", None)
    if not chain:
        yield f"exception ({report.when})", str(getattr(longrepr, "reprcrash", None) or "")
        return
    for reprtraceback, reprcrash, descr in chain:
        crash = getattr(reprcrash, "message", "") or ""
        # Assertion introspection quotes the values of the test's own expressions: only a
        # non-assertion exception's text is the code under test speaking.
        if crash.startswith("AssertionError") or crash.startswith("assert "):
            continue
        yield f"exception ({report.when})", crash
        for entry in getattr(reprtraceback, "reprentries", []):
            lines = [line[1:].strip() for line in getattr(entry, "lines", []) if line.startswith("E")]
            if lines:
                yield f"exception ({report.when})", "\n".join(lines)
        if descr:
            yield f"exception ({report.when})", descr


_KEY = pytest.StashKey[SecretAudit]()


def pytest_configure(config: pytest.Config) -> None:
    audit = SecretAudit()
    audit.install_fake_hooks()
    audit.collect_environment()
    config.stash[_KEY] = audit


def pytest_unconfigure(config: pytest.Config) -> None:
    audit = config.stash.get(_KEY, None)
    if audit is not None:
        audit.uninstall()


# Tests that run a nested pytest session (the ``pytester`` fixture) print that session's
# output, which is the audit's own subject under test, not a leak of the outer suite.
_NESTED_SESSIONS: set[str] = set()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _NESTED_SESSIONS.update(i.nodeid for i in items if "pytester" in getattr(i, "fixturenames", ()))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    audit = item.config.stash[_KEY]
    audit.collect_environment()
    try:
        return (yield)
    finally:
        # Connections a test set through monkeypatch are still in place here.
        audit.collect_environment()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # The report hook has no config argument; the plugin instance registered below holds it.
    audit = _current.get("audit")
    if audit is not None and report.nodeid not in _NESTED_SESSIONS:
        audit.scan_report(report)


_current: dict[str, SecretAudit] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _current["audit"] = session.config.stash[_KEY]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    audit = session.config.stash.get(_KEY, None)
    if audit is None or not audit.leaks:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{leak.nodeid}: in {leak.where}: {leak.masked}" for leak in audit.leaks]
    if reporter is not None:
        reporter.section("SECRET LEAKS", sep="=", red=True, bold=True)
        reporter.line(
            f"{len(audit.leaks)} leak(s) of an API key or webhook secret in captured output or exceptions:",
            red=True,
        )
        for line in lines:
            reporter.line("  " + line, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    audit = config.stash.get(_KEY, None)
    if audit is not None and not audit.leaks:
        terminalreporter.write_line(
            f"secret audit: {len(audit.secrets)} secret(s), {audit.scanned} captured text(s), no leak"
        )
