"""The HTTP layer: requests as signers see them, answers read whole, httpcore2's failures under httpx's names.

The pool runs httpcore2's real HTTP/1.1 code over its in-memory network backend (no sockets).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore2
import pytest
from httpcore2._backends.mock import MockBackend, MockStream

from cbr_checkpointer import http

TIMEOUT = http.timeout(5.0, connect=1.0)


def pool_answering(
    answer: list[bytes], backend: httpcore2.NetworkBackend | None = None
) -> http.ConnectionPool:
    pool = http.ConnectionPool(ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), max_connections=1)
    pool._pool = httpcore2.ConnectionPool(network_backend=backend or MockBackend(answer))
    return pool


class RecordingStream(MockStream):
    """Answers with its buffer; keeps what was written and the timeout of every read and write."""

    def __init__(self, buffer: list[bytes]) -> None:
        super().__init__(buffer)
        self.written = b""
        self.timeouts: list[tuple[str, float | None]] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.timeouts.append(("read", timeout))
        return super().read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.timeouts.append(("write", timeout))
        self.written += buffer


class ScriptedBackend(MockBackend):
    """A network whose one connection is `stream`, or on which every connection fails as `failure`;
    keeps the connect timeouts."""

    def __init__(self, stream: RecordingStream | None = None, failure: Exception | None = None) -> None:
        super().__init__([])
        self.stream = stream
        self.failure = failure
        self.connect_timeouts: list[float | None] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.NetworkStream:
        self.connect_timeouts.append(timeout)
        if self.failure is not None:
            raise self.failure
        assert self.stream is not None
        return self.stream


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://cbr.example.com/v3/p", "cbr.example.com"),
        ("https://cbr.example.com:443/v3/p", "cbr.example.com"),
        ("http://127.0.0.1:8080/", "127.0.0.1:8080"),
        ("http://127.0.0.1:80/", "127.0.0.1"),
        ("http://[::1]:9000/", "[::1]:9000"),
    ],
)
def test_a_request_carries_the_host_header_it_will_be_sent_with(url: str, host: str) -> None:
    assert http.Request("GET", url).headers["host"] == host


def test_every_request_names_its_sender_and_refuses_compressed_answers() -> None:
    headers = http.Request("GET", "https://h/").headers
    assert (headers["user-agent"], headers["accept-encoding"]) == ("cbr-checkpointer", "identity")


def test_a_body_or_a_post_carries_its_length_and_a_bodiless_get_none() -> None:
    assert http.Request("POST", "https://h/", content=b"{}").headers["Content-Length"] == "2"
    assert http.Request("POST", "https://h/").headers["Content-Length"] == "0"
    assert "Content-Length" not in http.Request("GET", "https://h/").headers


def test_parameters_are_percent_encoded_and_appended_to_a_query() -> None:
    request = http.Request("GET", "https://h/p?a=1", params={"secretId": "arn:x/y z"})
    assert request.url == "https://h/p?a=1&secretId=arn%3Ax%2Fy%20z"


def test_headers_are_found_in_any_case_and_keep_the_case_last_set() -> None:
    headers = http.Headers({"X-Auth-Token": "t1"})
    headers["x-auth-token"] = "t2"
    headers.add("Vary", "a")
    headers.add("vary", "b")
    assert dict(headers) == {"x-auth-token": "t2", "vary": "a, b"}
    del headers["X-AUTH-TOKEN"]
    assert list(headers) == ["vary"]


def test_headers_never_show_their_values() -> None:
    assert "secret" not in repr(http.Headers({"Authorization": "secret"}))


def test_a_client_appends_paths_to_its_base_and_signs_before_sending() -> None:
    sent: list[http.Request] = []

    class Recording:
        def send(self, request: http.Request, timeout: http.Timeout) -> http.Response:
            sent.append(request)
            return http.Response(204, http.Headers(), b"")

        def close(self) -> None:
            pass

    def sign(request: http.Request) -> None:
        request.headers["Authorization"] = f"signed {request.method} {request.url}"

    client = http.Client(
        "https://cbr.example.com/prefix/", timeout=TIMEOUT, max_connections=1, transport=Recording()
    )
    client.request("POST", "/v3/p/checkpoints", content=b"{}", sign=sign)

    (request,) = sent
    assert request.url == "https://cbr.example.com/prefix/v3/p/checkpoints"
    assert request.headers["authorization"] == "signed POST https://cbr.example.com/prefix/v3/p/checkpoints"


def test_an_answer_is_read_whole_with_repeated_headers_joined() -> None:
    pool = pool_answering(
        [
            b"HTTP/1.1 200 OK\r\n",
            b"Content-Type: application/json\r\n",
            b"Vary: a\r\n",
            b"Vary: b\r\n",
            b"X-Note: caf\xe9\r\n",
            b"Content-Length: 11\r\n",
            b"\r\n",
            b'{"ok": true}'[:11],
        ]
    )

    response = pool.send(http.Request("GET", "https://h/"), TIMEOUT)

    assert (response.status_code, response.headers["vary"], response.headers["x-note"]) == (
        200,
        "a, b",
        "café",
    )
    assert response.content == b'{"ok": true'


@pytest.mark.parametrize(
    ("failure", "ours"),
    [
        (httpcore2.ConnectError("[Errno 111] Connection refused"), http.ConnectError),
        (httpcore2.ConnectTimeout("timed out"), http.ConnectTimeout),
        (httpcore2.ProxyError("proxy refused"), http.ProxyError),
    ],
)
def test_httpcore2s_failures_are_raised_as_ours_with_their_message(
    failure: Exception, ours: type[http.TransportError]
) -> None:
    pool = pool_answering([], ScriptedBackend(failure=failure))

    with pytest.raises(ours) as raised:
        pool.send(http.Request("GET", "https://h/"), TIMEOUT)

    assert str(raised.value) == str(failure)
    assert raised.value.__cause__ is failure


def test_a_header_h11_refuses_is_a_local_protocol_error() -> None:
    pool = pool_answering([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])

    with pytest.raises(http.LocalProtocolError, match="Illegal header value"):
        pool.send(http.Request("GET", "https://h/", headers={"X-Auth-Token": "token\n"}), TIMEOUT)


def test_a_header_that_is_not_ascii_is_refused_without_its_value() -> None:
    pool = pool_answering([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])

    with pytest.raises(http.LocalProtocolError) as raised:
        pool.send(http.Request("GET", "https://h/", headers={"X-Auth-Token": "sécret"}), TIMEOUT)

    assert str(raised.value) == "the X-Auth-Token header is not ASCII"


def test_every_failure_httpcore2_raises_has_a_class_of_ours_in_the_same_place() -> None:
    # httpcore2's own taxonomy is the reference: same names, same parents (ours add a common base).
    theirs = {
        kind.__name__: kind
        for kind in vars(httpcore2).values()
        if isinstance(kind, type)
        and issubclass(kind, Exception)
        and kind is not httpcore2.ConnectionNotAvailable
    }
    ours = {name: getattr(http, name) for name in theirs}
    for name, kind in theirs.items():
        assert issubclass(ours[name], http.TransportError)
        parent = kind.__mro__[1]
        expected_parent = http.TransportError if parent is Exception else ours[parent.__name__]
        assert ours[name].__mro__[1] is expected_parent, name


def test_what_goes_on_the_wire_is_the_request_a_signer_saw() -> None:
    # Given a signed request whose path has a `;` and whose query is canonical
    stream = RecordingStream([b"HTTP/1.1 204 No Content\r\n\r\n"])
    pool = pool_answering([], ScriptedBackend(stream))
    request = http.Request("POST", "https://cbr.example.com:8443/v3/p/a;b?x=1%202", content=b"{}")
    request.headers["Authorization"] = "signed"

    # When it is sent
    pool.send(request, TIMEOUT)

    # Then the request line and every header are the ones the request held, and nothing else
    head, _, body = stream.written.partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode("ascii").split("\r\n")
    assert request_line == "POST /v3/p/a;b?x=1%202 HTTP/1.1"
    assert dict(line.split(": ", 1) for line in header_lines) == dict(request.headers)
    assert body == b"{}"


def test_each_timeout_reaches_the_connection() -> None:
    stream = RecordingStream([b"HTTP/1.1 204 No Content\r\n\r\n"])
    backend = ScriptedBackend(stream)
    pool = pool_answering([], backend)

    pool.send(http.Request("GET", "https://h/"), http.Timeout(connect=1.0, read=2.0, write=3.0, pool=4.0))

    assert backend.connect_timeouts == [1.0]
    assert set(stream.timeouts) == {("write", 3.0), ("read", 2.0)}


def test_idle_connections_expire_after_the_keepalive_time_unless_told_otherwise() -> None:
    client = http.Client("http://127.0.0.1:9", timeout=TIMEOUT, max_connections=3)
    client.open()
    pool = client._transport_now()
    assert isinstance(pool, http.ConnectionPool)
    assert (pool._pool._keepalive_expiry, pool._pool._max_connections) == (http.KEEPALIVE_SECONDS, 3)
    client.close()
