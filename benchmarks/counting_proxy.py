"""A counting HTTP reverse proxy on loopback, put in front of the moto server to count real AWS requests.

moto keeps no request log, so `make bench` and the structural tests point `AWS_ENDPOINT_URL` at this
proxy: every request that reaches moto is counted by its `X-Amz-Target` (`AWSEvents.PutEvents`,
`DynamoDB_20120810.PutItem`, ...), and so is every TCP connection a client opens to it.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
)


class CountingProxy:
    """Forwards everything to `upstream` (http://host:port) and counts requests per `X-Amz-Target`."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self._targets: Counter[str] = Counter()
        self._connections = 0
        self._upstream_connections = 0
        self._server = _ProxyServer((host, 0), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CountingProxy:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._targets.clear()
            self._connections = 0
            self._upstream_connections = 0

    def count(self, target: str) -> int:
        """Requests forwarded with this `X-Amz-Target`, e.g. `AWSEvents.PutEvents`."""
        with self._lock:
            return self._targets[target]

    @property
    def targets(self) -> dict[str, int]:
        with self._lock:
            return dict(self._targets)

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._connections

    @property
    def upstream_connections(self) -> int:
        """TCP connections opened to the upstream (one per client connection, another after an error)."""
        with self._lock:
            return self._upstream_connections

    def _record(self, target: str) -> None:
        with self._lock:
            self._targets[target] += 1

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def _connected_upstream(self) -> None:
        with self._lock:
            self._upstream_connections += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ProxyServer

    def setup(self) -> None:
        super().setup()
        self.server.proxy._connected()
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream is not None:
                self._upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def _forward(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        proxy._record(self.headers.get("X-Amz-Target") or f"{self.command} {self.path.split('?')[0]}")
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            self._upstream.connect()
            proxy._connected_upstream()
        try:
            self._upstream.request(self.command, self.path, body=body, headers=headers)
            response = self._upstream.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self._upstream.close()
            self._upstream = None
            self.send_error(502)
            return
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], proxy: CountingProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer's FQDN lookup (a DNS query that can stall an offline machine).
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.socket.getsockname()[:2]
