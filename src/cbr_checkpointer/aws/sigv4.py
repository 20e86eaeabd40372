"""AWS Signature Version 4 for the function's HTTP requests.

Follows https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html; the contract
tests check it against botocore's `SigV4Auth`, header for header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

from pydantic import SecretStr

from cbr_checkpointer.http import Request
from cbr_checkpointer.redaction import remember
from cbr_checkpointer.values import value

ALGORITHM = "AWS4-HMAC-SHA256"
SIGNED_FIELDS = frozenset({"authorization", "x-amz-date", "x-amz-security-token"})
# Hop-by-hop and tracing headers that proxies and tracers may change in flight (botocore's list).
UNSIGNED_HEADERS = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
DEFAULT_PORTS = {"http": 80, "https": 443}


@value
class AwsCredentials:
    """An access key pair, with the session token of temporary credentials (as Lambda provides)."""

    access_key_id: str
    secret_access_key: SecretStr
    session_token: SecretStr | None = None

    def __post_init__(self) -> None:
        remember(self.secret_access_key, self.session_token)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, also collapsing repeated slashes as AWS services expect."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    leading = "/" if path.startswith("/") else ""
    trailing = "/" if path.endswith("/") and segments else ""
    return leading + "/".join(segments) + trailing


def _canonical_uri(path: str) -> str:
    # The path is already URI-encoded on the wire; AWS (outside S3) wants it encoded once more.
    return quote(_remove_dot_segments(path) if path else "/", safe="/~")


def _canonical_query(query: str) -> str:
    pairs = []
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    credentials: AwsCredentials,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """The headers to send: `headers` plus `X-Amz-Date`, `X-Amz-Security-Token` (temporary
    credentials) and `Authorization`.

    Every header given is signed except hop-by-hop and tracing ones; `Host` is signed from the URL
    when absent. `url` must be as sent on the wire (path and query already percent-encoded);
    `now` must be timezone-aware.
    """
    timestamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    date = timestamp[:8]
    sent = {name: value for name, value in headers.items() if name.lower() not in SIGNED_FIELDS}
    sent["X-Amz-Date"] = timestamp
    if credentials.session_token is not None:
        sent["X-Amz-Security-Token"] = credentials.session_token.get_secret_value()

    signed: dict[str, list[str]] = {}
    for name, header_value in sent.items():
        if name.lower() not in UNSIGNED_HEADERS:
            signed.setdefault(name.lower(), []).append(" ".join(header_value.split()))
    signed.setdefault("host", [_host(url)])
    names = sorted(signed)
    canonical_headers = "".join(f"{name}:{','.join(signed[name])}\n" for name in names)
    signed_headers = ";".join(names)
    payload_hash = next(
        (value for name, value in sent.items() if name.lower() == "x-amz-content-sha256"),
        hashlib.sha256(body).hexdigest(),
    )

    parts = urlsplit(url)
    canonical_request = "\n".join(
        [
            method.upper(),
            _canonical_uri(parts.path),
            _canonical_query(parts.query),
            canonical_headers,
            signed_headers,
            payload_hash,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, timestamp, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    key = ("AWS4" + credentials.secret_access_key.get_secret_value()).encode("utf-8")
    for part in (date, region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()

    sent["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return sent


class SigV4Signer:
    """Signs each request at the moment it is sent."""

    def __init__(
        self,
        credentials: AwsCredentials,
        *,
        region: str,
        service: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._service = service
        self._clock = clock

    def __call__(self, request: Request) -> None:
        signed = sign(
            request.method,
            request.url,
            dict(request.headers),
            request.content,
            credentials=self._credentials,
            region=self._region,
            service=self._service,
            now=self._clock(),
        )
        request.headers.update(signed)
