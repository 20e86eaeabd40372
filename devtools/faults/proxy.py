"""A faulting HTTP proxy: forwards to one upstream, answers scripted faults instead, records every call.

Put in front of the CBR API or of moto, it lets a test or the fault matrix make one operation fail (a
status, a body, a dropped connection, a delay) a given number of times and count what went through.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade", "content-length"}
)


@dataclass
class Rule:
    """A scripted answer for the next `times` requests that match.

    A request matches on its method, a substring of its path, the end of its `X-Amz-Target` and, with
    `when`, a predicate on its JSON body. `forward=False` answers without passing the request on (nothing
    takes effect upstream); `forward=True` lets the upstream act on it first and then answers this instead
    of what the upstream said. `body` is a JSON value, bytes, or a function of the request's JSON body.
    """

    method: str = "POST"
    path: str = ""
    target: str = ""
    when: Callable[[Any], bool] | None = None
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    forward: bool = False
    times: int = 1
    delay: float = 0.0  # seconds the answer is held back

    def matches(self, method: str, path: str, target: str, document: Any) -> bool:
        if method != self.method.upper() or self.path not in path:
            return False
        if self.target and not target.endswith(self.target):
            return False
        return self.when is None or bool(self.when(document))

    def answer(self, document: Any) -> tuple[int, bytes, dict[str, str]]:
        body = self.body(document) if callable(self.body) else self.body
        if isinstance(body, bytes):
            return self.status, body, dict(self.headers)
        if body is None:
            return self.status, b"", dict(self.headers)
        content_type = "application/x-amz-json-1.1" if self.target else "application/json;charset=UTF-8"
        return self.status, json.dumps(body).encode(), {"Content-Type": content_type, **self.headers}


@dataclass
class ProxiedCall:
    """One request through a proxy, logged when it arrives: what it was, what was answered (None: nothing
    yet; 0: the connection was closed without an answer), and whether a rule answered it."""

    method: str
    path: str
    target: str
    status: int | None = None
    scripted: bool = False


class FaultProxy:
    """A loopback HTTP proxy that forwards to one upstream, except where a scripted `Rule` says otherwise.

    When the upstream closes the connection without answering, the proxy does the same to its client.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.upstream = ""
        self.rules: list[Rule] = []
        self._calls: list[ProxiedCall] = []
        self._connections = 0
        self._lock = threading.Lock()
        self._server: _ProxyServer | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None

    def start(self, upstream: str) -> FaultProxy:
        self.upstream = upstream.rstrip("/")
        self._http = httpx.Client(
            timeout=httpx.Timeout(300.0, connect=5.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            trust_env=False,
            follow_redirects=False,
        )
        self._server = _ProxyServer(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        if self._http is not None:
            self._http.close()
        self._server = self._thread = self._http = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self._calls.clear()
            self._connections = 0

    @property
    def connections_opened(self) -> int:
        """TCP connections clients opened to the proxy."""
        with self._lock:
            return self._connections

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    @property
    def calls(self) -> list[ProxiedCall]:
        with self._lock:
            return list(self._calls)

    def count(self, *, target: str = "", path: str = "", method: str = "") -> int:
        return sum(
            1
            for call in self.calls
            if call.target.endswith(target) and path in call.path and call.method.endswith(method)
        )

    def _take(self, method: str, path: str, target: str, document: Any) -> Rule | None:
        with self._lock:
            for index, rule in enumerate(self.rules):
                if rule.matches(method, path, target, document):
                    rule.times -= 1
                    if rule.times <= 0:
                        del self.rules[index]
                    return rule
        return None

    def _arrived(self, method: str, path: str, target: str) -> ProxiedCall:
        call = ProxiedCall(method, path, target)
        with self._lock:
            self._calls.append(call)
        return call

    def handle(
        self, method: str, target_path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes, dict[str, str]] | None:
        """The answer to send back, or None to close the connection without one."""
        path = urlsplit(target_path).path
        lowered = {name.lower(): value for name, value in headers}
        target = lowered.get("x-amz-target", "")
        document = _json_or_none(body)
        call = self._arrived(method, path, target)
        rule = self._take(method, path, target, document)
        call.scripted = rule is not None
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        if rule is not None and not rule.forward:
            answer = rule.answer(document)
            call.status = answer[0]
            return answer
        forwarded = [(name, value) for name, value in headers if name.lower() not in HOP_BY_HOP]
        assert self._http is not None
        try:
            response = self._http.request(
                method, self.upstream + target_path, content=body, headers=forwarded
            )
        except httpx.TransportError:
            call.status = 0
            return None
        if rule is not None:
            answer = rule.answer(document)
        else:
            kept = {
                name: value
                for name, value in response.headers.items()
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-encoding"
            }
            answer = (response.status_code, response.content, kept)
        call.status = answer[0]
        return answer


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ProxyServer

    def setup(self) -> None:
        super().setup()
        self.server.proxy._connected()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the proxy's call log is read instead."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.proxy.handle(self.command, self.path, list(self.headers.items()), body)
        if answer is None:
            self.close_connection = True
            return
        status, content, headers = answer
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _ProxyHandler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # no FQDN lookup
        self.server_name, self.server_port = self.socket.getsockname()[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None
