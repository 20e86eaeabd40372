"""A Lambda Runtime API on loopback for one execution environment, timed from the server side.

The runtime interface client (awslambdaric) long-polls `GET /2018-06-01/runtime/invocation/next`, runs
the handler and answers on `POST .../invocation/{id}/response` or `.../error`; an import that raises
goes to `POST .../init/error`. This server hands out the invocations queued with `submit` and records,
on a monotonic clock, when each call arrived, so that init (process start -> first /next) and cold
start (process start -> first /response) are measured the way Lambda sees them, not from inside the
process. At each of those moments it also reads the process's CPU clock (all threads, dead ones too).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:cbr-checkpointer"
NEXT_POLL_SECONDS = 0.5  # how often a waiting /next looks whether the server is closing


def process_cpu_seconds(pid: int) -> float:
    """CPU time of process `pid` so far (user + system, every thread), in nanosecond resolution.

    The process CPU clock of another process: clock id ((~pid) << 3) | CPUCLOCK_SCHED (2), what
    clock_getcpuclockid(3) returns on Linux. /proc/<pid>/stat would only give 10 ms ticks.
    """
    return time.clock_gettime((~pid << 3) | 2)


@dataclass
class Invocation:
    event: dict[str, Any]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_seconds: float = 120.0
    delivered: float | None = None  # monotonic: /next returned it
    delivered_cpu: float | None = None
    answered: float | None = None  # monotonic: /response or /error arrived
    answered_cpu: float | None = None
    response: Any = None
    error: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def wall(self) -> float:
        assert self.delivered is not None
        assert self.answered is not None
        return self.answered - self.delivered

    @property
    def cpu(self) -> float:
        assert self.delivered_cpu is not None
        assert self.answered_cpu is not None
        return self.answered_cpu - self.delivered_cpu


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-call (the bench ends environments with SIGKILL) is not an error here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RuntimeApi:
    """The Runtime API of one execution environment: `submit` queues an invocation, `wait` its answer."""

    def __init__(self) -> None:
        self._pending: queue.Queue[Invocation] = queue.Queue()
        self._by_id: dict[str, Invocation] = {}
        self._closing = threading.Event()
        self.pid: int | None = None  # set once the process is started, for its CPU clock
        self.first_next: float | None = None
        self.first_next_cpu: float | None = None
        self.init_error: dict[str, Any] | None = None
        self.init_failed = threading.Event()
        self.next_calls = 0
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RuntimeApi:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def submit(self, event: dict[str, Any], timeout_seconds: float = 120.0) -> Invocation:
        invocation = Invocation(event, timeout_seconds=timeout_seconds)
        self._by_id[invocation.request_id] = invocation
        self._pending.put(invocation)
        return invocation

    def wait(self, invocation: Invocation, timeout: float) -> Invocation:
        """The invocation once answered; raises if init failed or no answer came within `timeout`."""
        deadline = time.monotonic() + timeout
        while not invocation.done.wait(0.05):
            if self.init_failed.is_set():
                raise RuntimeError(f"init failed: {self.init_error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer to invocation {invocation.request_id} within {timeout} s")
        return invocation

    def _cpu(self) -> float | None:
        return None if self.pid is None else process_cpu_seconds(self.pid)

    # -- the server side -------------------------------------------------------------------------

    def _next(self) -> Invocation | None:
        now, cpu = time.monotonic(), self._cpu()
        self.next_calls += 1
        if self.first_next is None:
            self.first_next, self.first_next_cpu = now, cpu
        while not self._closing.is_set():
            try:
                invocation = self._pending.get(timeout=NEXT_POLL_SECONDS)
            except queue.Empty:
                continue
            invocation.delivered, invocation.delivered_cpu = time.monotonic(), self._cpu()
            return invocation
        return None

    def _answer(self, request_id: str, kind: str, body: bytes) -> bool:
        now, cpu = time.monotonic(), self._cpu()
        invocation = self._by_id.get(request_id)
        if invocation is None:
            return False
        invocation.answered, invocation.answered_cpu = now, cpu
        payload = json.loads(body) if body else None
        if kind == "response":
            invocation.response = payload
        else:
            invocation.error = payload if isinstance(payload, dict) else {"errorMessage": str(payload)}
        invocation.done.set()
        return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # the client keeps its connection open between calls

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404)
                    return
                invocation = api._next()
                if invocation is None:
                    self._reply(500, b'{"errorType":"ServerClosing"}')
                    return
                deadline_ms = int((time.time() + invocation.timeout_seconds) * 1000)
                self._reply(
                    200,
                    json.dumps(invocation.event).encode(),
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                    },
                )

            def do_POST(self) -> None:
                body = self._body()
                parts = self.path.removeprefix(PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_error = json.loads(body) if body else {}
                    api.init_failed.set()
                    self._reply(202, b'{"status":"OK"}')
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    known = api._answer(parts[1], parts[2], body)
                    self._reply(202 if known else 400, b'{"status":"OK"}' if known else b"")
                else:
                    self._reply(404)

        return Handler
