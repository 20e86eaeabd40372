"""Shared fixtures. The sandbox (emulator + moto on loopback) is started once per session, reset per test.

Every test masks only the secrets it made itself (`own_secret_registry`): the registry of secrets is
process-wide by design, so without this a secret another test remembered (or a module remembered at
import, when its credentials constant was built) would mask words in this test's log lines.

Every test that uses the sandbox is also scanned for secrets (`secret_scan`): what it printed (fd level,
so child processes too), every line the function's log handler wrote, every record any other logger
let through, what escaped the handler, and every event it published must hold none of the sandbox's
credentials, nor any token or signature that went over the wire.
"""

from __future__ import annotations

import io
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import httpx2
import pytest

from cbr_checkpointer import redaction
from cbr_checkpointer.ports import NoObserver

# Whatever in the test process is still written as `import httpx` gets httpx2's classes, so its
# transports and exceptions work with the function's clients; httpx itself is not installed.
httpx2.alias_httpx()

if TYPE_CHECKING:
    from devtools.sandbox import Sandbox


@pytest.fixture(autouse=True)
def own_secret_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty registry of secrets for the test, the process's own put back afterwards."""
    monkeypatch.setattr(redaction, "_registry", redaction.SecretRegistry())


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[Sandbox]:
    from devtools.sandbox import Sandbox

    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(sandbox_session: Sandbox) -> Iterator[Sandbox]:
    """A clean sandbox with the function configured to use it (AK/SK auth)."""
    sandbox_session.reset()
    sandbox_session.auth = "aksk"
    with sandbox_session.configured():
        yield sandbox_session


class SecretScan:
    """The texts a test let out, and the secrets that must not be in them."""

    def __init__(self, sandbox: Sandbox, capture: Any, caplog: pytest.LogCaptureFixture) -> None:
        from devtools.faults import static_secrets

        self._sandbox = sandbox
        self._capture = capture
        self._caplog = caplog
        self.texts: list[str] = []
        self.secrets: set[str] = static_secrets()
        self.leak_expected = False
        self.function_log = io.StringIO()

    def add(self, *texts: str) -> None:
        self.texts.extend(texts)

    def harvest(self) -> None:
        """Remember the tokens the emulator issued and the signatures and tokens it was sent."""
        from devtools.faults import signatures_and_tokens

        emulator = self._sandbox.emulator
        self.secrets |= signatures_and_tokens(emulator.requests) | set(emulator.issued_tokens)

    def collect(self) -> None:
        """Take in what was printed and logged so far."""
        out, err = self._capture.readouterr()
        self.add(out, err, self.function_log.getvalue())
        self.function_log.seek(0)
        self.function_log.truncate()
        for when in ("setup", "call"):
            self.add(*(_record_text(record) for record in self._caplog.get_records(when)))

    def leaks(self) -> list[str]:
        from devtools.faults import leaks

        self.harvest()
        self.collect()
        return leaks(self.texts, self.secrets)


def _record_text(record: logging.LogRecord) -> str:
    """A log record as any handler could write it: its fields and its exception."""
    parts = [json.dumps(vars(record), default=str)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


class _Tee(io.TextIOBase):
    """Writes to the stream a handler had and keeps a copy."""

    def __init__(self, stream: Any, copy: io.StringIO) -> None:
        self._stream = stream
        self._copy = copy

    def write(self, text: str) -> int:
        self._copy.write(text)
        return int(self._stream.write(text))

    def flush(self) -> None:
        self._stream.flush()


def _copying_function_log(scan: SecretScan) -> Callable[[], None]:
    """Keep a copy of every line the function's one log handler writes; answers how to stop."""
    from cbr_checkpointer.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        pytest.fail(f"the function's log handler is {handler!r}, not a stream the secret scan can read")
    previous = handler.setStream(_Tee(handler.stream, scan.function_log))
    return lambda: handler.setStream(previous)


class _FailureRecorder(NoObserver):
    """Keeps the text of whatever the handler raises to Lambda (what Lambda would log of it)."""

    def __init__(self, scan: SecretScan) -> None:
        self._scan = scan

    def invocation_failed(self, error: BaseException) -> None:
        self._scan.add("".join(traceback.format_exception(error)))


@pytest.fixture(autouse=True)
def secret_scan(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretScan | None]:
    """For a sandbox test: fail it if a secret shows up in its output, logs, errors or events."""
    if "sandbox" not in request.fixturenames:
        yield None
        return
    session: Sandbox = request.getfixturevalue("sandbox_session")
    capture_name = "capsys" if "capsys" in request.fixturenames else "capfd"
    scan = SecretScan(session, request.getfixturevalue(capture_name), request.getfixturevalue("caplog"))

    reset = session.emulator.reset

    def harvest_then_reset() -> None:
        scan.harvest()
        reset()

    monkeypatch.setattr(session.emulator, "reset", harvest_then_reset)

    published_events = session.published_events

    def published_and_scanned() -> list[dict[str, Any]]:
        events = published_events()
        scan.add(json.dumps(events))
        return events

    monkeypatch.setattr(session, "published_events", published_and_scanned)

    from cbr_checkpointer.runtime import observing

    stop_copying = _copying_function_log(scan)
    try:
        with observing(_FailureRecorder(scan)):
            yield scan
    finally:
        stop_copying()

    scan.add(json.dumps(published_events()))  # whatever the test left on the capture queue
    leaked = scan.leaks()
    if leaked and not scan.leak_expected:
        pytest.fail(f"secrets leaked into output, logs, errors or events: {leaked}")
