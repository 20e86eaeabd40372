"""The one home of HTTP: requests to one endpoint over a pool of HTTP/1.1 connections (h11).

h11 is the HTTP/1.1 state machine of the httpx family: httpx's core, httpcore, writes requests and reads
answers with it. Every call here goes to a fixed, configured endpoint and reads its answer whole, so
the function needs none of what httpx and httpcore add around h11 (redirects, cookies, content
decoding, proxies and CA bundles from the environment, HTTP/2, async backends). The pool below is
what is left: a few sockets kept alive per endpoint. Importing httpcore2 on top of h11 (its async
half, its proxies, its version read through `importlib.metadata` and `email`) cost ~7% of Lambda's
init, more than h11 itself.

- `Request`/`Response`: one exchange, the answer read whole; headers are looked up in any case.
- `Client`: requests to one endpoint, each signed on its way out by the caller's `sign`, over a
  `Transport`: a `ConnectionPool` made on first use, or whatever a test gives instead.
- `ConnectionPool`: connections kept alive and shared by threads, over `NetworkStream`s that
  `connect_socket` opens (TCP, TLS for https) or a test scripts.
- `TransportError` and its subclasses: the request got no HTTP answer; the names and the taxonomy are
  httpx's (`ConnectError`, `ReadTimeout`, ...), so what retries or classifies them reads the same.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import h11

from cbr_checkpointer.tls import tls_context_for
from cbr_checkpointer.values import value

__all__ = [
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionPool",
    "Connector",
    "Headers",
    "LocalProtocolError",
    "NetworkError",
    "NetworkStream",
    "Origin",
    "PoolTimeout",
    "ProtocolError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "SocketStream",
    "Timeout",
    "TimeoutException",
    "Transport",
    "TransportError",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
    "connect_socket",
    "timeout",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# How long an idle connection is kept for reuse (httpx's default). Lambda freezes an environment between
# invocations and NAT gateways forget idle flows; a connection idle longer is not trusted again.
KEEPALIVE_SECONDS = 5.0
# Every request says who sent it, and that its answer must not be compressed: nothing here decodes one.
DEFAULT_HEADERS = {"User-Agent": "cbr-checkpointer", "Accept-Encoding": "identity"}
# Bounds on an answer: its status line and headers (h11 refuses more), and its body.
MAX_HEAD_BYTES = 100 * 1024
MAX_ANSWER_BYTES = 32 * 1024 * 1024
READ_BYTES = 64 * 1024


class TransportError(Exception):
    """The request got no HTTP answer: it failed on its way out, or the answer did not arrive whole."""


class TimeoutException(TransportError):
    pass


class ConnectTimeout(TimeoutException):
    pass


class ReadTimeout(TimeoutException):
    pass


class WriteTimeout(TimeoutException):
    pass


class PoolTimeout(TimeoutException):
    pass


class NetworkError(TransportError):
    pass


class ConnectError(NetworkError):
    pass


class ReadError(NetworkError):
    pass


class WriteError(NetworkError):
    pass


class ProtocolError(TransportError):
    pass


class LocalProtocolError(ProtocolError):
    pass


class RemoteProtocolError(ProtocolError):
    pass


class UnsupportedProtocol(TransportError):
    pass


class Headers(MutableMapping[str, str]):
    """HTTP headers looked up, replaced and removed in any case; they keep the case they were set in."""

    __slots__ = ("_entries",)

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._entries: dict[str, tuple[str, str]] = {}
        if headers:
            self.update(headers)

    def __getitem__(self, name: str) -> str:
        return self._entries[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._entries[name.lower()] = (name, value)

    def __delitem__(self, name: str) -> None:
        del self._entries[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, name: str, value: str) -> None:
        """Set `name`, or append `value` to it as a repeated header reads: `first, second`."""
        self[name] = f"{self[name]}, {value}" if name in self else value

    def __repr__(self) -> str:
        return f"Headers({sorted(self)!r})"  # names only: values may be credentials


@value
class Timeout:
    """Seconds a request may wait: to connect, for each read and write, and for a free pooled connection."""

    connect: float
    read: float
    write: float
    pool: float


def timeout(seconds: float, *, connect: float | None = None) -> Timeout:
    """`seconds` for every wait, or `connect` for connecting when given."""
    return Timeout(connect=seconds if connect is None else connect, read=seconds, write=seconds, pool=seconds)


class Request:
    """One request: its URL is absolute, its `Host`, `Content-Length` and `DEFAULT_HEADERS` set, so that
    a signer sees what is sent."""

    __slots__ = ("content", "headers", "method", "url")

    def __init__(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes = b"",
    ) -> None:
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params, quote_via=quote)}"
        self.method = method
        self.url = url
        self.headers = Headers({"Host": _host_header(url), **DEFAULT_HEADERS})
        if content or method in _METHODS_WITH_BODY:
            self.headers["Content-Length"] = str(len(content))
        if headers:
            self.headers.update(headers)
        self.content = content

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class Response:
    """An HTTP answer, read whole."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Headers, content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


class Transport(Protocol):
    """What sends a request and reads its answer whole; raises a `TransportError` when there is none."""

    def send(self, request: Request, timeout: Timeout) -> Response: ...

    def close(self) -> None: ...


class NetworkStream(Protocol):
    """One connection's bytes: a socket, or a test's script. `read` returns b"" once the peer has closed
    its side; failures are raised as `ReadError`/`ReadTimeout` and `WriteError`/`WriteTimeout`."""

    def read(self, max_bytes: int, timeout: float) -> bytes: ...

    def write(self, data: bytes, timeout: float) -> None: ...

    def is_readable(self) -> bool: ...

    def close(self) -> None: ...


# Where a connection goes, and so which requests it can carry: scheme, host, port.
Origin = tuple[str, str, int]
# Opens a stream to an origin within a timeout; raises `ConnectError` or `ConnectTimeout`.
Connector = Callable[[Origin, float], NetworkStream]


class SocketStream:
    """A `NetworkStream` over a connected socket, plain or TLS."""

    __slots__ = ("_socket",)

    def __init__(self, connected: socket.socket) -> None:
        self._socket = connected

    def read(self, max_bytes: int, timeout: float) -> bytes:
        try:
            self._socket.settimeout(timeout)
            return self._socket.recv(max_bytes)
        except TimeoutError as failure:
            raise ReadTimeout(str(failure) or "timed out") from failure
        except OSError as failure:
            raise ReadError(str(failure)) from failure

    def write(self, data: bytes, timeout: float) -> None:
        try:
            self._socket.settimeout(timeout)
            self._socket.sendall(data)
        except TimeoutError as failure:
            raise WriteTimeout(str(failure) or "timed out") from failure
        except OSError as failure:
            raise WriteError(str(failure)) from failure

    def is_readable(self) -> bool:
        """Whether there is something to read: on an idle connection, that its peer closed it."""
        if self._socket.fileno() == -1:
            return True
        if isinstance(self._socket, ssl.SSLSocket) and self._socket.pending():
            return True
        poller = select.poll()
        poller.register(self._socket, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        self._socket.close()


def connect_socket(ssl_context: ssl.SSLContext, origin: Origin, timeout: float) -> SocketStream:
    """A TCP connection to `origin`, under TLS checked by `ssl_context` for https."""
    scheme, host, port = origin
    try:
        connected = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as failure:
        raise ConnectTimeout(str(failure) or "timed out") from failure
    except OSError as failure:
        raise ConnectError(str(failure)) from failure
    try:
        connected.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            connected = ssl_context.wrap_socket(connected, server_hostname=host)
    except TimeoutError as failure:
        connected.close()
        raise ConnectTimeout(str(failure) or "timed out") from failure
    except OSError as failure:  # ssl.SSLError, and so a certificate or host name refused
        connected.close()
        raise ConnectError(str(failure)) from failure
    return SocketStream(connected)


class _Connection:
    """One HTTP/1.1 connection (h11's state machine over a stream): one exchange at a time."""

    __slots__ = ("_protocol", "_write_failed", "idle_since", "origin", "stream")

    def __init__(self, origin: Origin, stream: NetworkStream) -> None:
        self.origin = origin
        self.stream = stream
        self.idle_since = 0.0
        self._protocol = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._write_failed = False

    def exchange(self, head: h11.Request, content: bytes, timeout: Timeout) -> Response:
        """Sends the request, reads its answer whole; afterwards `reusable` says whether both ends allow
        another exchange."""
        protocol = self._protocol
        try:
            wire = protocol.send(head) or b""
            if content:
                wire += protocol.send(h11.Data(data=content)) or b""
            wire += protocol.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as failure:  # framing (Host, Content-Length), never a header's value
            raise LocalProtocolError(str(failure)) from failure
        try:
            self.stream.write(wire, timeout.write)
        except WriteError as failure:
            # A server may answer before it has read the whole request (a refusal) and close: its answer
            # is read all the same, and only when there is none is the write's failure raised.
            self._write_failed = True
            try:
                return self._answer(timeout.read)
            except TransportError:
                raise failure from None
        return self._answer(timeout.read)

    def _answer(self, read_timeout: float) -> Response:
        event = self._next_event(read_timeout)
        while isinstance(event, h11.InformationalResponse):
            event = self._next_event(read_timeout)
        if not isinstance(event, h11.Response):
            raise RemoteProtocolError(f"the server sent {type(event).__name__} where an answer was due")
        status = event.status_code
        headers = Headers()
        for name, raw in event.headers.raw_items():
            headers.add(name.decode("latin-1"), _header_text(raw))
        body = bytearray()
        event = self._next_event(read_timeout)
        while isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_ANSWER_BYTES:
                raise RemoteProtocolError(f"the answer's body is longer than {MAX_ANSWER_BYTES} bytes")
            event = self._next_event(read_timeout)
        if not isinstance(event, h11.EndOfMessage):
            raise RemoteProtocolError(f"the server sent {type(event).__name__} before the answer's end")
        return Response(status, headers, bytes(body))

    def reusable(self) -> bool:
        """After an exchange: both ends keep the connection open, nothing came after the answer, and it is
        ready for the next one."""
        protocol = self._protocol
        if (
            self._write_failed
            or protocol.our_state is not h11.DONE
            or protocol.their_state is not h11.DONE
            or protocol.trailing_data != (b"", False)
        ):
            return False
        protocol.start_next_cycle()
        return True

    def _next_event(self, timeout: float) -> Any:
        # Each pass reads at least one byte or ends: the answer's head is bounded by h11 and its body by
        # MAX_ANSWER_BYTES, so the reads are too.
        protocol = self._protocol
        try:
            event = protocol.next_event()
            while event is h11.NEED_DATA:
                data = self.stream.read(READ_BYTES, timeout)
                if not data and protocol.their_state is h11.SEND_RESPONSE:
                    raise RemoteProtocolError("the server closed the connection without answering")
                protocol.receive_data(data)
                event = protocol.next_event()
        except h11.RemoteProtocolError as failure:
            # Only h11's verdict: after it, h11 quotes the line it refused, which may be a header that
            # holds a credential (an IAM token in a malformed answer); nor is its exception chained.
            verdict = str(failure).split(":", 1)[0]
        else:
            return event
        raise RemoteProtocolError(verdict)

    def close(self) -> None:
        self.stream.close()


class ConnectionPool:
    """HTTP/1.1 connections kept alive and shared by threads: at most `max_connections` open, of which
    at most `max_keepalive_connections` idle, none of them idle longer than `keepalive_expiry` seconds.

    A request takes the connection to its origin that has been idle longest, unless its peer has closed
    it meanwhile, or else opens one with `connect` (`connect_socket` over `ssl_context` unless a test
    gives its own): taken in turn, every connection a burst opened stays in use and none expires while
    requests keep coming, so a later burst finds them open instead of paying for new handshakes. A
    connection that failed, or that either end will not keep, is closed after its exchange.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float = KEEPALIVE_SECONDS,
        connect: Connector | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect or partial(connect_socket, ssl_context)
        self._max_connections = max_connections
        self._max_idle = (
            max_connections
            if max_keepalive_connections is None
            else min(max_connections, max_keepalive_connections)
        )
        self._keepalive_expiry = keepalive_expiry
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []  # the longest idle first
        self._busy = 0  # requests that hold one of the max_connections turns
        # Requests waiting for a turn, first come first served: each waits on its own lock, which the
        # request ending its turn releases to hand the turn over (a semaphore lets a thread that just
        # gave one back take it again at once, and starve the others).
        self._waiting: deque[threading.Lock] = deque()
        self._closed = False

    def send(self, request: Request, timeout: Timeout) -> Response:
        origin, target = _origin_and_target(request.url)
        head = _head(request, target)
        if min(timeout.connect, timeout.read, timeout.write) <= 0 or timeout.pool < 0:
            # A socket takes 0 as "never wait" and refuses less: a caller whose time has run out.
            raise PoolTimeout("no time was left for the request")
        self._take_turn(min(timeout.pool, threading.TIMEOUT_MAX))
        try:
            connection = self._checkout(origin) or _Connection(origin, self._connect(origin, timeout.connect))
            try:
                response = connection.exchange(head, request.content, timeout)
            except BaseException:
                connection.close()
                raise
            self._checkin(connection)
            return response
        finally:
            self._end_turn()

    def close(self) -> None:
        """Closes the idle connections now, and each busy one when its exchange ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take_turn(self, timeout: float) -> None:
        with self._lock:
            if self._busy < self._max_connections and not self._waiting:
                self._busy += 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        if turn.acquire(timeout=timeout):  # a timeout send() checked: at least 0, at most TIMEOUT_MAX
            return
        with self._lock:
            if turn in self._waiting:
                self._waiting.remove(turn)
                raise PoolTimeout(f"no connection came free within {timeout:g} s")
        # Handed over between the timeout and the lock: the turn is this request's after all.

    def _end_turn(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._busy -= 1

    def _checkout(self, origin: Origin) -> _Connection | None:
        """An idle connection to `origin` its peer has not closed, or None, and then room for a new one."""
        stale: list[_Connection] = []
        found: _Connection | None = None
        with self._lock:
            now = self._clock()
            for connection in self._idle:
                if now - connection.idle_since >= self._keepalive_expiry:
                    stale.append(connection)
                elif found is None and connection.origin == origin:
                    if connection.stream.is_readable():
                        stale.append(connection)  # its peer closed it, or broke it, while it was idle
                    else:
                        found = connection
            self._idle = [c for c in self._idle if c is not found and c not in stale]
            if found is None and self._idle and self._busy + len(self._idle) > self._max_connections:
                stale.append(self._idle.pop(0))
        for connection in stale:
            connection.close()
        return found

    def _checkin(self, connection: _Connection) -> None:
        if not connection.reusable():
            connection.close()
            return
        connection.idle_since = self._clock()
        with self._lock:
            if self._closed:
                surplus = [connection]
            else:
                self._idle.append(connection)
                excess = max(0, len(self._idle) - self._max_idle)
                surplus = self._idle[:excess]
                del self._idle[:excess]
        for extra in surplus:
            extra.close()


class Client:
    """Requests to one endpoint over one `Transport`, made on first use and shared by threads.

    The pool is a `ConnectionPool` over the endpoint's TLS context (`tls_context_for`); a `transport`
    given instead (a test's) is used as it is. A path is appended to `base_url`, whose own path is
    kept; an absolute URL is sent as it is.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: Timeout,
        max_connections: int,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float = KEEPALIVE_SECONDS,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._limits = (max_connections, max_keepalive_connections, keepalive_expiry)
        self._given = transport
        self._transport: Transport | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """Make the pool now (the TLS context, the CA bundle for https), not on the first request."""
        self._transport_now()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes = b"",
        timeout: Timeout | None = None,
        sign: Callable[[Request], None] | None = None,
    ) -> Response:
        url = path if "://" in path else self.base_url + path
        request = Request(method, url, params=params, headers=headers, content=content)
        if sign is not None:
            sign(request)
        return self._transport_now().send(request, timeout or self.timeout)

    def close(self) -> None:
        with self._lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def _transport_now(self) -> Transport:
        with self._lock:
            if self._transport is None:
                max_connections, max_keepalive, expiry = self._limits
                self._transport = self._given or ConnectionPool(
                    ssl_context=tls_context_for(self.base_url),
                    max_connections=max_connections,
                    max_keepalive_connections=max_keepalive,
                    keepalive_expiry=expiry,
                )
            return self._transport


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


def _origin_and_target(url: str) -> tuple[Origin, bytes]:
    # Split as the signers split it: the path keeps its `;params`, the query its encoding.
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        # Neither the URL nor its netloc is quoted: a user:password@ in it would be a credential.
        found = f"scheme {parts.scheme!r}" + ("" if parts.hostname else " and no host")
        raise UnsupportedProtocol(f"an http or https URL with a host is needed, not {found}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        wire_target = target.encode("ascii")
    except UnicodeEncodeError:
        raise LocalProtocolError("the URL's path or query is not ASCII: it must be percent-encoded") from None
    return (scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme]), wire_target


def _head(request: Request, target: bytes) -> h11.Request:
    """The request line and headers as h11 writes them; a header it refuses is named, its value never
    shown (it may be a credential)."""
    headers = _wire_headers(request.headers)
    try:
        return h11.Request(method=request.method.encode("ascii"), target=target, headers=headers)
    except h11.LocalProtocolError:
        refused = _refused_header(headers)
    if refused is not None:
        raise LocalProtocolError(f"the {refused} header is not valid HTTP")
    try:
        h11.Request(method=b"GET", target=target, headers=[(b"Host", b"h")])
    except h11.LocalProtocolError:
        raise LocalProtocolError(
            "the URL's path or query is not valid HTTP: it must be percent-encoded"
        ) from None
    raise LocalProtocolError(f"{request.method} is not an HTTP method")


def _refused_header(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, text in headers:
        alone = [(name, text)] if name.lower() == b"host" else [(b"Host", b"h"), (name, text)]
        try:
            h11.Request(method=b"GET", target=b"/", headers=alone)
        except h11.LocalProtocolError:
            return name.decode("ascii")
    return None


def _wire_headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    wire = []
    for name, text in headers.items():
        try:
            wire.append((name.encode("ascii"), text.encode("ascii")))
        except UnicodeEncodeError:
            # The value is not quoted: it may be a credential.
            raise LocalProtocolError(f"the {name} header is not ASCII") from None
    return wire


def _header_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
