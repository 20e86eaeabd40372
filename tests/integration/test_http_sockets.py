"""The connection pool over real sockets on loopback: connections kept alive, a connection the server
closed while idle replaced, and each way a connection fails raised under its own name."""

from __future__ import annotations

import http.server
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from cbr_checkpointer import http as cbr_http
from cbr_checkpointer.tls import trusting_no_one

TIMEOUT = cbr_http.timeout(5.0)
# How long the server keeps an idle connection in the test of one it closes.
SERVER_IDLE_SECONDS = 0.2


class _KeepAliveServer(http.server.ThreadingHTTPServer):
    """An HTTP/1.1 server that counts the connections it accepts and signals each it closes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAliveAnswer)
        self.accepted = 0
        self.closed = threading.Semaphore(0)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], address: object) -> None:
        self.accepted += 1
        super().process_request(request, address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        super().shutdown_request(request)
        self.closed.release()


class _KeepAliveAnswer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SERVER_IDLE_SECONDS  # an idle connection is closed by the server after this long

    def do_GET(self) -> None:
        body = self.path.encode("ascii")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_KeepAliveServer]:
    running = _KeepAliveServer()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.shutdown()
        running.server_close()


def _url(server: _KeepAliveServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _pool() -> cbr_http.ConnectionPool:
    return cbr_http.ConnectionPool(ssl_context=trusting_no_one(), max_connections=2, keepalive_expiry=60.0)


def test_requests_in_turn_share_one_kept_alive_connection(server: _KeepAliveServer) -> None:
    pool = _pool()

    answers = [pool.send(cbr_http.Request("GET", _url(server, f"/{n}")), TIMEOUT).content for n in range(3)]

    assert (answers, server.accepted) == ([b"/0", b"/1", b"/2"], 1)
    pool.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_not_failed(server: _KeepAliveServer) -> None:
    # Given a kept connection that the server has since closed for being idle
    pool = _pool()
    pool.send(cbr_http.Request("GET", _url(server, "/first")), TIMEOUT)
    assert server.closed.acquire(timeout=10 * SERVER_IDLE_SECONDS + 5)

    # When the next request is sent
    response = pool.send(cbr_http.Request("GET", _url(server, "/second")), TIMEOUT)

    # Then it is answered over a new connection
    assert (response.content, server.accepted) == (b"/second", 2)
    pool.close()


def test_a_port_nobody_listens_on_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free now, and nothing listens on it once closed
    pool = _pool()

    with pytest.raises(cbr_http.ConnectError):
        pool.send(cbr_http.Request("GET", f"http://127.0.0.1:{port}/"), TIMEOUT)


class _Silent(socketserver.BaseRequestHandler):
    """Reads the request and then, as told by the server's `answer`, closes or never answers."""

    def handle(self) -> None:
        self.request.recv(65536)
        if self.server.answer == "close":  # type: ignore[attr-defined]
            return
        self.server.release.wait(10.0)  # type: ignore[attr-defined]


@pytest.fixture
def silent() -> Iterator[socketserver.ThreadingTCPServer]:
    running = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Silent)
    running.daemon_threads = True
    running.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.release.set()  # type: ignore[attr-defined]
        running.shutdown()
        running.server_close()


def test_a_server_that_closes_without_answering_is_a_remote_protocol_error(
    silent: socketserver.ThreadingTCPServer,
) -> None:
    silent.answer = "close"  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{silent.server_address[1]}/"

    with pytest.raises(cbr_http.RemoteProtocolError, match="without answering"):
        _pool().send(cbr_http.Request("GET", url), TIMEOUT)


def test_a_server_that_never_answers_is_a_read_timeout(silent: socketserver.ThreadingTCPServer) -> None:
    silent.answer = "never"  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{silent.server_address[1]}/"

    with pytest.raises(cbr_http.ReadTimeout):
        _pool().send(cbr_http.Request("GET", url), cbr_http.timeout(0.2))
