"""The emulator's SDK-HMAC-SHA256 verifier against the published vector and the official SDK signer."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from cbr_emulator.signing import (
    canonical_query,
    canonical_uri,
    expected_signature,
    parse_authorization,
    signature_problem,
)

AK, SK = "AKEXAMPLE", "SKEXAMPLE"
HOST = "cbr.cn-north-4.myhuaweicloud.com"
VECTOR_BODY = b'{"checkpoint": {"vault_id": "v1", "parameters": {"incremental": true}}}'
VECTOR_SIGNATURE = "9e7c045523c7ae2df49f23caa5c6b4802dee864f31e081e207931427ff69134e"
NOW = datetime(2025, 1, 1, 0, 5, tzinfo=UTC)


def sdk_signed(
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    date: datetime = NOW,
    extra_headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers (lower-case names) of a request signed by the official SDK signer."""
    request = SdkRequest(
        method=method,
        schema="https",
        host=HOST,
        resource_path=path,
        query_params=query or [],
        header_params={
            "Content-Type": "application/json;charset=UTF-8",
            "X-Project-Id": "proj123",
            "X-Sdk-Date": date.strftime("%Y%m%dT%H%M%SZ"),
            **(extra_headers or {}),
        },
        body=body,
    )
    signed = Signer(BasicCredentials(AK, SK, "proj123")).sign(request)
    return {name.lower(): value for name, value in signed.header_params.items()}


def problem(
    method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
) -> str | None:
    return signature_problem(method, path, query, headers, body, secret_keys={AK: SK}, now=NOW)


def test_the_published_vector() -> None:
    headers = {
        "Content-Type": "application/json;charset=UTF-8",
        "Host": HOST,
        "X-Project-Id": "proj123",
        "X-Sdk-Date": "20250101T000000Z",
    }

    signature = expected_signature("POST", "/v3/proj123/checkpoints", {}, headers, VECTOR_BODY, SK)

    assert signature == VECTOR_SIGNATURE


def test_the_vector_authorization_header_verifies_at_its_own_time() -> None:
    headers = {
        "content-type": "application/json;charset=UTF-8",
        "host": HOST,
        "x-project-id": "proj123",
        "x-sdk-date": "20250101T000000Z",
        "authorization": "SDK-HMAC-SHA256 Access=AKEXAMPLE, "
        f"SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature={VECTOR_SIGNATURE}",
    }

    assert problem("POST", "/v3/proj123/checkpoints", {}, headers, VECTOR_BODY) is None


def test_canonical_uri_gets_a_trailing_slash_and_rfc3986_encoding() -> None:
    assert canonical_uri("/v3/p/checkpoints") == "/v3/p/checkpoints/"
    assert canonical_uri("/v3/p/checkpoints/") == "/v3/p/checkpoints/"
    assert canonical_uri("/v3/p/a%20b~c") == "/v3/p/a%20b~c/"


def test_canonical_query_sorts_by_key_then_value_and_encodes_spaces_as_percent_20() -> None:
    query = {"status": ["error", "available"], "name": ["a b"], "limit": ["10"]}

    assert canonical_query(query) == "limit=10&name=a%20b&status=available&status=error"


def test_a_request_signed_by_the_official_sdk_verifies() -> None:
    body = json.dumps({"checkpoint": {"vault_id": "v1"}}).encode()
    headers = sdk_signed("POST", "/v3/proj123/checkpoints", body=body)

    assert problem("POST", "/v3/proj123/checkpoints", {}, headers, body) is None


def test_a_signed_query_string_verifies_and_a_changed_one_does_not() -> None:
    headers = sdk_signed("GET", "/v3/proj123/backups", query=[("vault_id", "v1"), ("name", "nightly 1")])

    assert (
        problem("GET", "/v3/proj123/backups", {"vault_id": ["v1"], "name": ["nightly 1"]}, headers, b"")
        is None
    )
    assert problem(
        "GET", "/v3/proj123/backups", {"vault_id": ["v2"], "name": ["nightly 1"]}, headers, b""
    ) == ("signature mismatch")


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (lambda h: h | {"x-project-id": "other"}, "signature mismatch"),
        (lambda h: h | {"authorization": h["authorization"].replace(AK, "AKOTHER")}, "unknown access key"),
        (
            lambda h: h | {"authorization": h["authorization"].replace("content-type;host", "content-type")},
            "host is not signed",
        ),
        (lambda h: {k: v for k, v in h.items() if k != "authorization"}, "Authorization header is missing"),
        (lambda h: h | {"authorization": "Bearer abc"}, "Authorization header is not SDK-HMAC-SHA256"),
        (lambda h: h | {"x-security-token": "temporary"}, "x-security-token is not signed"),
        (
            lambda h: {k: v for k, v in h.items() if k != "x-project-id"},
            "signed header x-project-id is not in",
        ),
    ],
    ids=[
        "header-changed",
        "unknown-ak",
        "host-unsigned",
        "no-auth",
        "other-scheme",
        "token-unsigned",
        "missing",
    ],
)
def test_tampered_requests_are_refused_with_a_reason(
    tamper: Callable[[dict[str, str]], dict[str, str]], expected: str
) -> None:
    body = b'{"checkpoint": {"vault_id": "v1"}}'
    headers = tamper(sdk_signed("POST", "/v3/proj123/checkpoints", body=body))

    reason = problem("POST", "/v3/proj123/checkpoints", {}, headers, body)

    assert reason is not None
    assert reason.startswith(expected)
    assert SK not in reason


def test_a_changed_body_is_a_signature_mismatch() -> None:
    headers = sdk_signed("POST", "/v3/proj123/checkpoints", body=b'{"checkpoint": {"vault_id": "v1"}}')

    assert problem("POST", "/v3/proj123/checkpoints", {}, headers, b'{"checkpoint": {"vault_id": "v2"}}') == (
        "signature mismatch"
    )


def test_a_signed_security_token_is_accepted() -> None:
    headers = sdk_signed("GET", "/v3/proj123/backups", extra_headers={"X-Security-Token": "temporary"})

    assert problem("GET", "/v3/proj123/backups", {}, headers, b"") is None


@pytest.mark.parametrize(
    ("skew", "accepted"),
    [(timedelta(minutes=14), True), (timedelta(minutes=-14), True), (timedelta(minutes=16), False)],
)
def test_x_sdk_date_must_be_within_15_minutes(skew: timedelta, accepted: bool) -> None:
    headers = sdk_signed("GET", "/v3/proj123/backups", date=NOW - skew)

    reason = problem("GET", "/v3/proj123/backups", {}, headers, b"")

    if accepted:
        assert reason is None
    else:
        assert reason is not None
        assert "15 minutes" in reason


def test_signed_headers_must_be_sorted_lower_case() -> None:
    headers = sdk_signed("GET", "/v3/proj123/backups")
    headers["authorization"] = headers["authorization"].replace(
        "content-type;host;x-project-id;x-sdk-date", "host;content-type;x-project-id;x-sdk-date"
    )

    assert (
        problem("GET", "/v3/proj123/backups", {}, headers, b"")
        == "SignedHeaders must be lower-case and sorted"
    )


def test_parse_authorization_splits_the_three_parts() -> None:
    parsed = parse_authorization("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=abc")

    assert parsed is not None
    assert (parsed.access_key, parsed.signed_headers, parsed.signature) == (
        "AK1",
        ("host", "x-sdk-date"),
        "abc",
    )
    assert parse_authorization("SDK-HMAC-SHA256 Access=AK1") is None
