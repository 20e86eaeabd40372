"""The HTTP layer: requests as signers see them, answers read whole, connections kept alive and bounded,
failures under httpx's names.

The pool runs its real HTTP/1.1 code (h11) over scripted streams (no sockets). httpcore2, the core of
httpx2, is the reference: for the same request it writes the same bytes, and its failures are named and
ranked as ours are.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpcore2
import pytest
from httpcore2._backends.mock import MockBackend, MockStream
from tests.fakes import FakeClock, ScriptedNetwork, ScriptedStream

from cbr_checkpointer import http

TIMEOUT = http.timeout(5.0, connect=1.0)
NO_CONTENT = [b"HTTP/1.1 204 No Content\r\n\r\n"]


def pool_over(network: ScriptedNetwork, **limits: float) -> http.ConnectionPool:
    return http.ConnectionPool(
        ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        max_connections=int(limits.pop("max_connections", 1)),
        connect=network,
        **limits,  # type: ignore[arg-type]
    )


def answered(answer: Iterable[bytes], request: http.Request | None = None) -> http.Response:
    pool = pool_over(ScriptedNetwork(ScriptedStream(list(answer))))
    return pool.send(request or http.Request("GET", "https://h/"), TIMEOUT)


class HeldAnswer:
    """A stream's answer held back (`hold` is its `before_read`) until the test calls `release`."""

    def __init__(self) -> None:
        self.reading = threading.Event()
        self._released = threading.Event()

    def hold(self) -> None:
        self.reading.set()
        assert self._released.wait(10.0)

    def release(self) -> None:
        self._released.set()


def sending(pool: http.ConnectionPool, path: str, held: HeldAnswer) -> threading.Thread:
    """A request sent from a thread of its own, returned once it waits for its held answer."""
    thread = threading.Thread(target=pool.send, args=(http.Request("GET", f"https://h{path}"), TIMEOUT))
    thread.start()
    assert held.reading.wait(10.0)
    return thread


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
    response = answered(
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

    assert (response.status_code, response.headers["vary"], response.headers["x-note"]) == (
        200,
        "a, b",
        "café",
    )
    assert response.content == b'{"ok": true'


def test_a_chunked_answer_after_an_interim_one_is_read_whole() -> None:
    response = answered(
        [
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"5\r\nhello\r\n",
            b"6\r\n world\r\n0\r\n\r\n",
        ]
    )
    assert (response.status_code, response.content) == (200, b"hello world")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([], "closed the connection without answering"),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", b"short"], "peer closed connection"),
        ([b"SMTP ready\r\n\r\n"], "illegal status line"),
    ],
)
def test_an_answer_cut_short_or_not_http_is_a_remote_protocol_error(
    answer: list[bytes], message: str
) -> None:
    with pytest.raises(http.RemoteProtocolError, match=message):
        answered(answer)


def test_a_body_longer_than_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_ANSWER_BYTES", 8)
    with pytest.raises(http.RemoteProtocolError, match="longer than 8 bytes"):
        answered([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", b"123456789"])


def test_a_header_h11_refuses_is_named_never_shown() -> None:
    network = ScriptedNetwork(ScriptedStream(NO_CONTENT))
    with pytest.raises(http.LocalProtocolError) as raised:
        pool_over(network).send(http.Request("GET", "https://h/", headers={"X-Auth-Token": "tok\n"}), TIMEOUT)
    assert str(raised.value) == "the X-Auth-Token header is not valid HTTP"
    assert raised.value.__context__ is None  # h11's refusal, which quotes the value, is not chained
    assert network.connects == []  # refused before any connection was taken


def test_a_header_that_is_not_ascii_is_refused_without_its_value() -> None:
    with pytest.raises(http.LocalProtocolError) as raised:
        answered(NO_CONTENT, http.Request("GET", "https://h/", headers={"X-Auth-Token": "sécret"}))
    assert str(raised.value) == "the X-Auth-Token header is not ASCII"


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("ftp://user:pa55word@h/file", "scheme 'ftp'"),
        ("https:///no-host", "scheme 'https' and no host"),
        ("/relative", "scheme '' and no host"),
    ],
)
def test_a_url_that_is_not_http_with_a_host_is_an_unsupported_protocol(url: str, found: str) -> None:
    with pytest.raises(http.UnsupportedProtocol) as raised:
        pool_over(ScriptedNetwork()).send(http.Request("GET", url), TIMEOUT)
    assert str(raised.value) == f"an http or https URL with a host is needed, not {found}"


def test_a_failed_connection_is_closed_and_the_failure_raised_as_it_came() -> None:
    # Given a connection that breaks while the answer is read
    stream = ScriptedStream(read_failure=http.ReadError("[Errno 104] Connection reset by peer"))
    network = ScriptedNetwork(stream, ScriptedStream(NO_CONTENT))
    pool = pool_over(network)

    # When a request is sent, Then its failure is raised, the connection closed, and the next request
    # gets a new one
    with pytest.raises(http.ReadError, match="reset by peer"):
        pool.send(http.Request("GET", "https://h/"), TIMEOUT)
    assert stream.closed
    assert pool.send(http.Request("GET", "https://h/"), TIMEOUT).status_code == 204
    assert len(network.connects) == 2


def test_a_malformed_answer_header_is_refused_without_quoting_it() -> None:
    with pytest.raises(http.RemoteProtocolError) as raised:
        answered([b"HTTP/1.1 201 Created\r\nX-Subject-Token MIIsecret-token\r\n\r\n"])
    assert str(raised.value) == "illegal header line"
    assert raised.value.__context__ is None  # h11's own message quotes the line


def test_a_path_that_is_not_valid_http_is_named_as_the_fault() -> None:
    with pytest.raises(http.LocalProtocolError, match="path or query is not valid HTTP"):
        answered(NO_CONTENT, http.Request("GET", "https://h/a b"))


@pytest.mark.parametrize("spent", [0.0, -0.5])
@pytest.mark.parametrize("phase", ["connect", "read", "write", "pool"])
def test_a_request_whose_time_has_run_out_is_not_sent(phase: str, spent: float) -> None:
    # A socket takes a zero timeout as "never wait" and refuses a negative one; the pool waits 0 s.
    limits = {"connect": 1.0, "read": 1.0, "write": 1.0, "pool": 1.0, phase: spent}
    network = ScriptedNetwork(ScriptedStream(NO_CONTENT))

    if phase == "pool" and spent == 0.0:
        assert (
            pool_over(network).send(http.Request("GET", "https://h/"), http.Timeout(**limits)).status_code
            == 204
        )
        return
    with pytest.raises(http.PoolTimeout, match="no time was left"):
        pool_over(network).send(http.Request("GET", "https://h/"), http.Timeout(**limits))
    assert network.connects == []


def test_an_answer_sent_before_the_request_was_whole_is_read_and_the_connection_closed() -> None:
    # Given a server that refuses the request early and stops reading it
    stream = ScriptedStream(
        [b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"],
        write_failure=http.WriteError("[Errno 32] Broken pipe"),
    )

    # When a request is sent, Then its answer is the server's, and the connection is not kept
    response = pool_over(ScriptedNetwork(stream)).send(
        http.Request("POST", "https://h/", content=b"{}"), TIMEOUT
    )
    assert (response.status_code, stream.closed) == (413, True)


def test_a_write_that_fails_with_no_answer_after_it_is_a_write_error() -> None:
    stream = ScriptedStream(write_failure=http.WriteError("[Errno 32] Broken pipe"))
    with pytest.raises(http.WriteError, match="Broken pipe"):
        pool_over(ScriptedNetwork(stream)).send(http.Request("POST", "https://h/", content=b"{}"), TIMEOUT)
    assert stream.closed


def test_what_goes_on_the_wire_is_the_request_a_signer_saw() -> None:
    # Given a signed request whose path has a `;` and whose query is canonical
    stream = ScriptedStream(NO_CONTENT)
    request = http.Request("POST", "https://cbr.example.com:8443/v3/p/a;b?x=1%202", content=b"{}")
    request.headers["Authorization"] = "signed"

    # When it is sent
    pool_over(ScriptedNetwork(stream)).send(request, TIMEOUT)

    # Then the request line and every header are the ones the request held, and nothing else
    head, _, body = stream.written.partition(b"\r\n\r\n")
    request_line, *header_lines = head.decode("ascii").split("\r\n")
    assert request_line == "POST /v3/p/a;b?x=1%202 HTTP/1.1"
    assert dict(line.split(": ", 1) for line in header_lines) == dict(request.headers)
    assert body == b"{}"


class _RecordingMockStream(MockStream):
    def __init__(self, buffer: list[bytes]) -> None:
        super().__init__(buffer)
        self.written = b""

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer


class _OneStreamBackend(MockBackend):
    def __init__(self, stream: _RecordingMockStream) -> None:
        super().__init__([])
        self.stream = stream

    def connect_tcp(self, *args: object, **kwargs: object) -> httpcore2.NetworkStream:
        return self.stream


@pytest.mark.parametrize(
    ("method", "url", "content"),
    [
        ("POST", "https://cbr.example.com/v3/p/checkpoints", b'{"checkpoint": {}}'),
        ("GET", "http://127.0.0.1:8080/v3/p/checkpoints/c-1?limit=10&offset=0", b""),
        ("DELETE", "https://[::1]:9443/v3/p/a;b", b""),
    ],
)
def test_the_bytes_on_the_wire_are_the_ones_httpcore2_writes_for_the_same_request(
    method: str, url: str, content: bytes
) -> None:
    request = http.Request(method, url, content=content, headers={"X-Auth-Token": "t"})
    ours = ScriptedStream(NO_CONTENT)
    pool_over(ScriptedNetwork(ours)).send(request, TIMEOUT)

    theirs = _RecordingMockStream(list(NO_CONTENT))
    with httpcore2.ConnectionPool(network_backend=_OneStreamBackend(theirs)) as reference:
        parts = urlsplit(url)
        reference.request(
            method,
            httpcore2.URL(
                scheme=parts.scheme.encode(),
                host=(parts.hostname or "").encode(),
                port=parts.port,
                target=(parts.path + (f"?{parts.query}" if parts.query else "")).encode(),
            ),
            headers=[(name.encode(), text.encode()) for name, text in request.headers.items()],
            content=content if "Content-Length" in request.headers else None,
        )

    assert ours.written == theirs.written


def test_every_failure_of_ours_is_httpcore2s_of_the_same_name_in_the_same_place() -> None:
    # httpcore2's taxonomy is the reference: same names, same parents (ours add a common base).
    ours = {
        kind.__name__: kind
        for kind in vars(http).values()
        if isinstance(kind, type)
        and issubclass(kind, http.TransportError)
        and kind is not http.TransportError
    }
    assert len(ours) == 13
    for name, kind in ours.items():
        theirs = getattr(httpcore2, name)
        parent = theirs.__mro__[1]
        expected_parent = http.TransportError if parent is Exception else ours[parent.__name__]
        assert kind.__mro__[1] is expected_parent, name


def test_each_timeout_reaches_the_connection() -> None:
    stream = ScriptedStream(NO_CONTENT)
    network = ScriptedNetwork(stream)

    pool_over(network).send(
        http.Request("GET", "https://h:8443/"), http.Timeout(connect=1.0, read=2.0, write=3.0, pool=4.0)
    )

    assert network.connects == [(("https", "h", 8443), 1.0)]
    assert set(stream.timeouts) == {("write", 3.0), ("read", 2.0)}


# -- keeping connections


def test_a_connection_is_kept_for_the_next_request_to_its_origin() -> None:
    stream = ScriptedStream([*NO_CONTENT, *NO_CONTENT])
    network = ScriptedNetwork(stream)
    pool = pool_over(network)

    for _ in range(2):
        pool.send(http.Request("GET", "https://h/"), TIMEOUT)

    assert (len(network.connects), stream.written.count(b"GET / HTTP/1.1"), stream.closed) == (1, 2, False)
    pool.close()
    assert stream.closed


def test_the_connection_idle_longest_is_taken_first_so_that_all_stay_in_use() -> None:
    # Given two connections to one origin, the second made idle before the first
    held = HeldAnswer()
    first = ScriptedStream([*NO_CONTENT, *NO_CONTENT], before_read=held.hold)
    second = ScriptedStream([*NO_CONTENT, *NO_CONTENT])
    pool = pool_over(ScriptedNetwork(first, second), max_connections=2)
    busy = sending(pool, "/a", held)
    pool.send(http.Request("GET", "https://h/b"), TIMEOUT)
    held.release()
    busy.join(10.0)

    # When two more requests are sent in turn, Then each takes the one idle longer
    pool.send(http.Request("GET", "https://h/c"), TIMEOUT)
    pool.send(http.Request("GET", "https://h/d"), TIMEOUT)
    assert (second.written.count(b"GET /c "), first.written.count(b"GET /d ")) == (1, 1)


def test_a_connection_idle_for_the_keepalive_time_is_closed_not_reused() -> None:
    clock = FakeClock(100.0)
    first, second = ScriptedStream(NO_CONTENT), ScriptedStream(NO_CONTENT)
    pool = pool_over(ScriptedNetwork(first, second), keepalive_expiry=5.0, clock=clock.now)  # type: ignore[arg-type]

    pool.send(http.Request("GET", "https://h/"), TIMEOUT)
    clock.advance(5.0)
    pool.send(http.Request("GET", "https://h/"), TIMEOUT)

    assert (first.closed, second.written.startswith(b"GET / "), second.closed) == (True, True, False)


def test_a_connection_its_peer_closed_while_idle_is_closed_not_reused() -> None:
    first, second = ScriptedStream(NO_CONTENT), ScriptedStream(NO_CONTENT)
    pool = pool_over(ScriptedNetwork(first, second))

    pool.send(http.Request("GET", "https://h/"), TIMEOUT)
    first.peer_closed = True
    pool.send(http.Request("GET", "https://h/"), TIMEOUT)

    assert (first.closed, second.written.startswith(b"GET / ")) == (True, True)


def test_a_connection_the_server_will_close_is_closed_after_its_answer() -> None:
    stream = ScriptedStream([b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"])
    pool_over(ScriptedNetwork(stream)).send(http.Request("GET", "https://h/"), TIMEOUT)
    assert stream.closed


def test_a_connection_with_bytes_after_its_answer_is_closed_not_reused() -> None:
    # Given an answer followed, in the same read, by bytes no request asked for
    first = ScriptedStream([NO_CONTENT[0] + b"HTTP/1.1 503 Service Unavailable\r\n\r\n"])
    second = ScriptedStream(NO_CONTENT)
    pool = pool_over(ScriptedNetwork(first, second))

    # When two requests are sent, Then the second is answered by a new connection, not by those bytes
    answers = [pool.send(http.Request("GET", "https://h/"), TIMEOUT).status_code for _ in range(2)]
    assert (answers, first.closed) == ([204, 204], True)


def test_a_connection_busy_when_the_pool_closes_is_closed_when_its_exchange_ends() -> None:
    # Given a pool closed while its one request waits for the answer
    stream = ScriptedStream(NO_CONTENT)
    pool = pool_over(ScriptedNetwork(stream))
    stream.before_read = pool.close

    # When the answer comes, Then the request gets it and the connection is closed, not kept

    assert pool.send(http.Request("GET", "https://h/"), TIMEOUT).status_code == 204
    assert stream.closed


def test_no_more_idle_connections_are_kept_than_allowed() -> None:
    streams = [ScriptedStream(NO_CONTENT) for _ in range(2)]
    pool = pool_over(ScriptedNetwork(*streams), max_connections=2, max_keepalive_connections=0)

    for _ in streams:
        pool.send(http.Request("GET", "https://h/"), TIMEOUT)

    assert [stream.closed for stream in streams] == [True, True]


def test_a_new_origin_closes_an_idle_connection_rather_than_open_more_than_allowed() -> None:
    first, second = ScriptedStream(NO_CONTENT), ScriptedStream(NO_CONTENT)
    network = ScriptedNetwork(first, second)
    pool = pool_over(network, max_connections=1)

    pool.send(http.Request("GET", "https://a/"), TIMEOUT)
    pool.send(http.Request("GET", "http://b:8080/"), TIMEOUT)

    assert [origin for origin, _ in network.connects] == [("https", "a", 443), ("http", "b", 8080)]
    assert (first.closed, second.closed) == (True, False)


def test_a_request_waits_for_a_connection_no_longer_than_its_pool_timeout() -> None:
    # Given the pool's one connection busy: its answer held back until the test lets it through
    held = HeldAnswer()
    pool = pool_over(ScriptedNetwork(ScriptedStream([*NO_CONTENT, *NO_CONTENT], before_read=held.hold)))
    busy = sending(pool, "/", held)

    # When another request may wait 0.05 s for it, Then it gets none
    with pytest.raises(http.PoolTimeout, match=r"within 0\.05 s"):
        pool.send(
            http.Request("GET", "https://h/"), http.Timeout(connect=1.0, read=1.0, write=1.0, pool=0.05)
        )

    # And once the answer is through, the connection serves the next request
    held.release()
    busy.join(10.0)
    assert pool.send(http.Request("GET", "https://h/"), TIMEOUT).status_code == 204


def test_waiting_requests_get_the_connection_in_the_order_they_came() -> None:
    # Given the pool's one connection busy and three requests queued behind it, in a known order
    held = HeldAnswer()
    stream = ScriptedStream([*NO_CONTENT] * 4, before_read=held.hold)
    pool = pool_over(ScriptedNetwork(stream))

    def send(name: str) -> None:
        pool.send(http.Request("GET", f"https://h/{name}"), http.timeout(10.0))

    threads = [threading.Thread(target=send, args=(name,)) for name in ("first", "second", "third", "fourth")]
    for thread in threads:
        thread.start()
        while thread.is_alive() and not _waiting_or_busy(pool, threads.index(thread) + 1):
            threading.Event().wait(0.001)

    # When the connection comes free
    held.release()
    for thread in threads:
        thread.join(10.0)

    # Then each request went out on it in the order it asked
    sent = [line.split()[1] for line in stream.written.split(b"\r\n") if line.startswith(b"GET ")]
    assert sent == [b"/first", b"/second", b"/third", b"/fourth"]


def _waiting_or_busy(pool: http.ConnectionPool, count: int) -> bool:
    return pool._busy + len(pool._waiting) >= count


def test_a_client_makes_its_pool_with_the_limits_it_was_given() -> None:
    client = http.Client("http://127.0.0.1:9", timeout=TIMEOUT, max_connections=3)
    client.open()
    pool = client._transport_now()
    assert isinstance(pool, http.ConnectionPool)
    assert (pool._keepalive_expiry, pool._max_connections, pool._max_idle) == (http.KEEPALIVE_SECONDS, 3, 3)
    client.close()
