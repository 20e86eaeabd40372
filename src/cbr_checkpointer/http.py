"""The one home of HTTP: requests to one endpoint over a pool of connections, from httpcore2.

httpcore2 is the HTTP core of the httpx family: the connection pool, HTTP/1.1 (h11), TLS and timeouts
that httpx2's `Client` runs on. The function talks to it directly. Every call here goes to a fixed,
configured endpoint, answers are read whole, and redirects, cookies and content decoding are never
wanted, which is the part httpx2 adds; nor are proxies or CA bundles named by the environment
(`HTTPS_PROXY`, `SSL_CERT_FILE`): endpoints come from configuration. Importing httpx2 on top of
httpcore2 (its models, cookie jar, `urllib.request`, its version read through `importlib.metadata`,
and anyio, which it requires) cost about a sixth of Lambda's init.

- `Request`/`Response`: one exchange, the answer read whole; headers are looked up in any case.
- `Client`: requests to one endpoint, each signed on its way out by the caller's `sign`, over a
  `Transport`: a `ConnectionPool` made on first use, or whatever a test gives instead.
- `TransportError` and its subclasses: the request got no HTTP answer; the names and the taxonomy are
  httpx's (`ConnectError`, `ReadTimeout`, ...), so what retries or classifies them reads the same.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import httpcore2

from cbr_checkpointer.tls import tls_context_for
from cbr_checkpointer.values import value

__all__ = [
    "Client",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionPool",
    "Headers",
    "LocalProtocolError",
    "NetworkError",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "ReadError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Request",
    "Response",
    "Timeout",
    "TimeoutException",
    "Transport",
    "TransportError",
    "UnsupportedProtocol",
    "WriteError",
    "WriteTimeout",
    "timeout",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# How long an idle connection is kept for reuse (httpx's default). Lambda freezes an environment between
# invocations and NAT gateways forget idle flows; a connection idle longer is not trusted again.
KEEPALIVE_SECONDS = 5.0
# Every request says who sent it, and that its answer must not be compressed: nothing here decodes one.
DEFAULT_HEADERS = {"User-Agent": "cbr-checkpointer", "Accept-Encoding": "identity"}


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


class ProxyError(TransportError):
    pass


class UnsupportedProtocol(TransportError):
    pass


# httpcore2 names its failures as these classes are named: each maps to ours of the same name.
_FAILURES: dict[str, type[TransportError]] = {
    failure.__name__: failure
    for failure in (
        TimeoutException,
        ConnectTimeout,
        ReadTimeout,
        WriteTimeout,
        PoolTimeout,
        NetworkError,
        ConnectError,
        ReadError,
        WriteError,
        ProtocolError,
        LocalProtocolError,
        RemoteProtocolError,
        ProxyError,
        UnsupportedProtocol,
    )
}


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


class ConnectionPool:
    """Connections kept alive and shared by threads (httpcore2's pool); at most `max_connections` open."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        max_keepalive_connections: int | None = None,
        keepalive_expiry: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._pool = httpcore2.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
        )

    def send(self, request: Request, timeout: Timeout) -> Response:
        try:
            answer = self._pool.request(
                request.method,
                _wire_url(request.url),
                headers=_wire_headers(request.headers),
                content=request.content if "Content-Length" in request.headers else None,
                extensions={
                    "timeout": {
                        "connect": timeout.connect,
                        "read": timeout.read,
                        "write": timeout.write,
                        "pool": timeout.pool,
                    }
                },
            )
        except Exception as failure:
            ours = _transport_error(failure)
            if ours is None:
                raise
            raise ours from failure
        headers = Headers()
        for name, raw in answer.headers:
            headers.add(name.decode("latin-1"), _header_text(raw))
        return Response(answer.status, headers, answer.content)

    def close(self) -> None:
        self._pool.close()


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


def _wire_url(url: str) -> httpcore2.URL:
    # Split as the signers split it: httpcore2's own parsing of a string would drop `;params` from the path.
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return httpcore2.URL(
        scheme=parts.scheme.encode("ascii"),
        host=(parts.hostname or "").encode("ascii"),
        port=parts.port,
        target=target.encode("ascii"),
    )


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


def _transport_error(failure: Exception) -> TransportError | None:
    """httpcore2's failure as ours (its nearest class we name), with its message; None for anything else."""
    for kind in type(failure).__mro__:
        ours = _FAILURES.get(kind.__name__)
        if ours is not None and kind.__module__.startswith("httpcore2"):
            return ours(str(failure))
    return None
