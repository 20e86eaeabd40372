"""SDK-HMAC-SHA256 request signing, byte for byte as the official `huaweicloudsdkcore` `Signer`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from cbr_checkpointer.cbr.credentials import AkSkCredentials, CredentialsProvider
from cbr_checkpointer.http import Request

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# Headers the HTTP library sets or rewrites on its own. The SDK signs only the headers it sets itself,
# before `requests` adds these, and proxies may change them; signing them would break verification.
_TRANSPORT_HEADERS = frozenset(
    {"accept", "accept-encoding", "authorization", "connection", "content-length", "transfer-encoding"}
)


def _encode(text: str) -> str:
    return quote(text, safe="~")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def canonical_uri(path: str) -> str:
    uri = "/".join(_encode(segment) for segment in unquote(path or "/").split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query_string(query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in pairs)


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    ak: str,
    sk: str,
    now: datetime,
) -> dict[str, str]:
    """The headers to add to a request so that it carries a valid SDK-HMAC-SHA256 signature.

    `headers` are the headers to sign (all of them are signed, except names containing `_`, as the SDK
    does). The result holds `Authorization`, plus `X-Sdk-Date`, `Host` and `X-Sdk-Content-Sha256` when
    the signature needs them and `headers` lacks them. `now` must be timezone-aware.
    """
    if not ak:
        raise ValueError("ak is required")
    if not sk:
        raise ValueError("sk is required")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    parts = urlsplit(url)
    signed = dict(headers)
    added: dict[str, str] = {}

    content_type = _header(signed, "Content-Type")
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        added["X-Sdk-Content-Sha256"] = UNSIGNED_PAYLOAD
    given_date = _header(signed, "X-Sdk-Date")
    if given_date is None:
        date = now.astimezone(UTC).strftime(DATE_FORMAT)
        added["X-Sdk-Date"] = date
    else:
        date = datetime.strptime(given_date, DATE_FORMAT).strftime(DATE_FORMAT)
    if _header(signed, "Host") is None:
        added["Host"] = parts.netloc
    signed.update(added)

    names = sorted(name.lower() for name in signed if "_" not in name)
    values = {name.lower(): str(value).strip() for name, value in signed.items()}
    canonical_headers = "".join(f"{name}:{values[name]}\n" for name in names)
    if not body:
        payload_hash = EMPTY_BODY_SHA256
    else:
        payload_hash = _header(values, "X-Sdk-Content-Sha256") or hashlib.sha256(body).hexdigest()

    signed_headers = ";".join(names)
    canonical_request = "\n".join(
        (
            method.upper(),
            canonical_uri(parts.path),
            canonical_query_string(parts.query),
            canonical_headers,
            signed_headers,
            payload_hash,
        )
    )
    string_to_sign = f"{ALGORITHM}\n{date}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    signature = hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = f"{ALGORITHM} Access={ak}, SignedHeaders={signed_headers}, Signature={signature}"
    return added


def sign_request(
    request: Request, credentials: AkSkCredentials, *, project_id: str | None, now: datetime
) -> None:
    """Sign `request` in place: X-Security-Token and X-Project-Id first, then the signature headers.

    The query string is rewritten to its canonical form, as the SDK sends it, so the server verifies
    exactly the bytes that were signed.
    """
    if credentials.security_token is not None:
        request.headers["X-Security-Token"] = credentials.security_token.get_secret_value()
    if project_id:
        request.headers["X-Project-Id"] = project_id
    to_sign = {
        name: value for name, value in request.headers.items() if name.lower() not in _TRANSPORT_HEADERS
    }
    request.headers.update(
        sign(
            request.method,
            request.url,
            to_sign,
            request.content,
            ak=credentials.ak,
            sk=credentials.sk.get_secret_value(),
            now=now,
        )
    )
    parts = urlsplit(request.url)
    query = canonical_query_string(parts.query)
    if query:
        request.url = urlunsplit(parts._replace(query=query))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AkSkSigner:
    """Signs every request with the provider's current AK/SK credentials."""

    def __init__(
        self,
        credentials: CredentialsProvider,
        *,
        project_id: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._credentials = credentials
        self._project_id = project_id
        self._clock = clock

    def __call__(self, request: Request) -> None:
        credentials = self._credentials.get()
        if not isinstance(credentials, AkSkCredentials):
            raise TypeError("AkSkSigner needs AK/SK credentials; password credentials use an IAM token")
        sign_request(request, credentials, project_id=self._project_id, now=self._clock())

    def __repr__(self) -> str:
        return f"AkSkSigner(project_id={self._project_id!r})"
