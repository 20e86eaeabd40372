"""SDK-HMAC-SHA256 verification, written from Huawei's published description of the AK/SK algorithm.

Deliberately independent of any client code in this project: if the client misread the algorithm,
this verifier must not share the mistake.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "x-sdk-date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_SKEW = timedelta(minutes=15)


@dataclass(frozen=True)
class Authorization:
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def canonical_uri(path: str) -> str:
    encoded = "/".join(quote(segment, safe="~") for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(query: Mapping[str, Sequence[str]]) -> str:
    pairs = sorted((key, value) for key, values in query.items() for value in values)
    return "&".join(f"{quote(key, safe='~')}={quote(value, safe='~')}" for key, value in pairs)


def expected_signature(  # noqa: PLR0917 - mirrors the parts of a request, in their usual order
    method: str,
    path: str,
    query: Mapping[str, Sequence[str]],
    headers: Mapping[str, str],
    body: bytes,
    sk: str,
) -> str:
    """The hex signature of a request whose signed headers are exactly `headers` (which include X-Sdk-Date).

    `path` is the path as sent on the wire (percent-encoded, without the trailing slash the algorithm
    adds); `query` holds the decoded parameter values.
    """
    signed = {name.lower(): value.strip() for name, value in headers.items()}
    names = sorted(signed)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        [ALGORITHM, signed[DATE_HEADER], hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    return hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def parse_authorization(value: str) -> Authorization | None:
    """`SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex` -> its parts, or None if malformed."""
    algorithm, _, credentials = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    parts: dict[str, str] = {}
    for item in credentials.split(","):
        key, separator, part = item.strip().partition("=")
        if not separator:
            return None
        parts[key] = part
    if not {"Access", "SignedHeaders", "Signature"} <= parts.keys():
        return None
    return Authorization(parts["Access"], tuple(parts["SignedHeaders"].split(";")), parts["Signature"])


def signature_problem(
    method: str,
    path: str,
    query: Mapping[str, Sequence[str]],
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret_keys: Mapping[str, str],
    now: datetime,
) -> str | None:
    """None when the request is correctly signed by a known access key; else why not (never a secret).

    `headers` are all the request's headers with lower-case names; `secret_keys` maps AK to SK.
    """
    raw_authorization = headers.get("authorization")
    if raw_authorization is None:
        return "Authorization header is missing"
    authorization = parse_authorization(raw_authorization)
    if authorization is None:
        return f"Authorization header is not {ALGORITHM} Access=..., SignedHeaders=..., Signature=..."
    secret_key = secret_keys.get(authorization.access_key)
    if secret_key is None:
        return "unknown access key"
    signed = authorization.signed_headers
    if list(signed) != sorted(name.lower() for name in signed):
        return "SignedHeaders must be lower-case and sorted"
    for required in ("host", DATE_HEADER):
        if required not in signed:
            return f"{required} is not signed"
    if "x-security-token" in headers and "x-security-token" not in signed:
        return "x-security-token is not signed"
    missing = [name for name in signed if name not in headers]
    if missing:
        return f"signed header {missing[0]} is not in the request"
    try:
        signed_at = datetime.strptime(headers[DATE_HEADER], DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return f"X-Sdk-Date is not in the form {DATE_FORMAT}"
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        return "X-Sdk-Date is more than 15 minutes away from the server time"
    expected = expected_signature(
        method, path, query, {name: headers[name] for name in signed}, body, secret_key
    )
    if not hmac.compare_digest(expected, authorization.signature):
        return "signature mismatch"
    return None
