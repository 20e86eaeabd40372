"""Classification of CBR / API-gateway answers and transport failures (no sockets)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import get_args

import pytest

from cbr_checkpointer import http
from cbr_checkpointer.cbr import ERROR_CODES, CbrError, classify_response, classify_transport_error
from cbr_checkpointer.cbr.errors import MAX_MESSAGE_LENGTH, ErrorRule, parse_error_body
from cbr_checkpointer.domain import ErrorKind
from cbr_checkpointer.retry import parse_retry_after

# Facts about single codes, as CBR's and the API gateway's error tables state them: the status a code
# comes with, and what a caller should do. Written out here, independently of the table under test.
# (code, status, (kind, retryable, ambiguous, is_auth_failure))
KNOWN_ANSWERS = [
    # A parameter CBR refuses: fix the request, never retry it.
    ("BackupService.9900", 400, ("validation", False, False, False)),
    # The vault does not exist: retrying cannot help.
    ("BackupService.6105", 404, ("api", False, False, False)),
    # The resource is not bound to the vault.
    ("BackupService.6135", 400, ("api", False, False, False)),
    # Out of snapshot quota.
    ("BackupService.8300", 400, ("api", False, False, False)),
    # The vault is already running a backup: a clear refusal (nothing was created), try later.
    ("BackupService.6125", 400, ("api", True, False, False)),
    # The resource is being restored: try later.
    ("BackupService.2010", 400, ("api", True, False, False)),
    # "Resources are being backed up" comes as a 500, yet it is a refusal, not a server failure.
    ("BackupService.0002", 500, ("api", True, False, False)),
    # Authentication failed, also as a 500: refresh the credentials.
    ("BackupService.9998", 500, ("auth", False, False, True)),
    ("APIGW.0301", 401, ("auth", False, False, True)),
    ("APIGW.0307", 401, ("auth", False, False, True)),
    # The IAM user may not call the API: permanent.
    ("APIGW.0302", 403, ("api", False, False, False)),
    # An unknown exception in the backup service: the create may have happened.
    ("BackupService.9910", 500, ("api", True, True, False)),
    # The gateway's throttle.
    ("APIGW.0308", 429, ("throttled", True, False, False)),
]
ERROR_KINDS = set(get_args(ErrorKind))


def error_body(code: str, message: str = "details", **extra: str) -> bytes:
    return json.dumps({"error_code": code, "error_msg": message, **extra}).encode()


def facts(error: CbrError) -> tuple[str, bool, bool, bool]:
    return error.info.kind, error.info.retryable, error.ambiguous, error.is_auth_failure


@pytest.mark.parametrize(("code", "status", "want"), KNOWN_ANSWERS)
def test_known_codes_are_classified_as_their_meaning_asks(
    code: str, status: int, want: tuple[str, bool, bool, bool]
) -> None:
    # Given the code with the status it comes with
    error = classify_response(status, {}, error_body(code, "what went wrong"))

    # Then it is classified by its meaning, and the error keeps the code, status and message
    assert facts(error) == want
    assert error.info.code == code
    assert error.info.http_status == status
    assert "what went wrong" in error.info.message


# --- properties of the whole table ------------------------------------------------------------------


@pytest.mark.parametrize(("code", "rule"), sorted(ERROR_CODES.items()))
def test_every_code_in_the_table_is_well_formed_and_consistent(code: str, rule: ErrorRule) -> None:
    # A CBR or API-gateway code, with a kind and a meaning to put in messages
    assert re.fullmatch(r"(BackupService|APIGW)\.\d{4}", code)
    assert rule.kind in ERROR_KINDS
    assert rule.meaning.strip()
    # Throttling is always worth waiting for, and never leaves a create in doubt
    if rule.kind == "throttled":
        assert (rule.retryable, rule.ambiguous) == (True, False)
    # A refused parameter stays refused
    if rule.kind == "validation":
        assert not rule.retryable
    # Authentication failures are exactly the auth kind; the client refreshes the credentials once by
    # itself, so they are not retryable as such
    assert rule.auth_failure == (rule.kind == "auth")
    if rule.auth_failure:
        assert not rule.retryable
    # A create that may have happened is retried under the same key: ambiguous implies retryable
    if rule.ambiguous:
        assert rule.retryable


def test_the_table_covers_the_codes_a_create_meets_most() -> None:
    assert {code for code, _, _ in KNOWN_ANSWERS} <= set(ERROR_CODES)


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_code_in_the_table_is_classified_by_code_whatever_the_status(code: str) -> None:
    # Given the code with a status that disagrees with it (but is not a gateway 502/504)
    error = classify_response(400, {}, error_body(code))

    # Then the code decides
    rule = ERROR_CODES[code]
    assert facts(error) == (rule.kind, rule.retryable, rule.ambiguous, rule.auth_failure)


def test_busy_backup_service_0002_comes_as_500_but_is_a_clear_refusal() -> None:
    error = classify_response(500, {}, error_body("BackupService.0002", "resources are being backed up"))
    assert facts(error) == ("api", True, False, False)


def test_auth_failure_9998_comes_as_500() -> None:
    error = classify_response(500, {}, error_body("BackupService.9998", "auth failed"))
    assert facts(error) == ("auth", False, False, True)


def test_validation_message_names_the_field() -> None:
    body = error_body("BackupService.9900", "Invalid parameter: checkpoint.vault_id")
    error = classify_response(400, {}, body)
    assert error.info.kind == "validation"
    assert "checkpoint.vault_id" in error.info.message
    assert "checkpoint.vault_id" in str(error)


@pytest.mark.parametrize("code", ["APIG.0308", "APIC.0308", "APIGW.0308"])
def test_throttling_under_any_gateway_prefix(code: str) -> None:
    error = classify_response(429, {}, error_body(code, "The throttling threshold has been reached"))
    assert facts(error) == ("throttled", True, False, False)


# --- quirks and status fallbacks ------------------------------------------------------------------


def test_malformed_request_url_401_is_not_found_not_auth() -> None:
    body = json.dumps({"unauthorized": {"code": "401", "message": "Malformed request url"}}).encode()
    error = classify_response(401, {}, body)
    assert facts(error) == ("api", False, False, False)
    assert "not found" in error.info.message


@pytest.mark.parametrize(
    ("status", "body", "want"),
    [
        (429, b"", ("throttled", True, False, False)),
        (401, b"", ("auth", False, False, True)),
        (403, b"", ("api", False, False, False)),
        (404, b"", ("api", False, False, False)),
        (408, b"", ("timeout", True, False, False)),
        (409, b"", ("api", False, False, False)),
        (413, error_body("APIGW.0201", "Request entity too large"), ("api", False, False, False)),
        (502, error_body("APIGW.0201", "Backend unavailable"), ("api", True, True, False)),
        (504, error_body("APIGW.0201", "Backend timeout"), ("api", True, True, False)),
        (502, b"<html>Bad Gateway</html>", ("api", True, True, False)),
        (500, b"", ("api", True, True, False)),
        (503, b"Service Unavailable", ("api", True, True, False)),
        (500, error_body("BackupService.1234", "new code"), ("api", True, True, False)),
        (400, error_body("BackupService.1234", "new code"), ("api", False, False, False)),
        (302, b"", ("api", False, False, False)),
        (201, b"{}", ("api", True, True, False)),
    ],
)
def test_statuses_without_a_known_code(status: int, body: bytes, want: tuple[str, bool, bool, bool]) -> None:
    assert facts(classify_response(status, {}, body)) == want


# --- body shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"error_code": "BackupService.6105", "error_msg": "no vault"}, "BackupService.6105", "no vault"),
        ({"errorCode": "BackupService.6105", "errorMsg": "no vault"}, "BackupService.6105", "no vault"),
        ({"code": "BackupService.6105", "message": "no vault"}, "BackupService.6105", "no vault"),
        ({"error": {"code": "BackupService.6105", "message": "no vault"}}, "BackupService.6105", "no vault"),
        (
            {"error": {"code": 401, "message": "wrong password", "title": "Unauthorized"}},
            "401",
            "wrong password",
        ),
        ({"a": 1, "b": {"c": {"error_code": "X.1", "error_msg": "deep"}}}, "X.1", "deep"),
        ({"error_code": "BackupService.6105"}, None, None),
        ({}, None, None),
    ],
)
def test_error_bodies_are_read_like_the_sdk(body: object, code: str | None, message: str | None) -> None:
    parsed = parse_error_body(json.dumps(body).encode())
    assert (parsed.code, parsed.message) == (code, message)


@pytest.mark.parametrize(
    "body", [b"<html><body>502 Bad Gateway</body></html>", b"[1, 2]", b"\xff\xfe not utf-8", b"null"]
)
def test_bodies_that_are_not_json_objects_become_the_message(body: bytes) -> None:
    error = classify_response(503, {}, body)
    assert error.info.code is None
    assert error.info.message.startswith("server error (HTTP 503): ")


def test_empty_body_gives_the_meaning_alone() -> None:
    assert classify_response(404, {}, b"").info.message == "not found"


def test_long_bodies_are_clipped_to_one_line() -> None:
    error = classify_response(500, {}, b"line\n" * 1000)
    assert len(error.info.message) <= MAX_MESSAGE_LENGTH
    assert "\n" not in error.info.message


def test_request_id_comes_from_the_header_else_from_the_body() -> None:
    body = error_body("APIGW.0308", "slow down", request_id="from-body")
    assert classify_response(429, {"X-Request-Id": "from-header"}, body).info.request_id == "from-header"
    assert classify_response(429, {"x-request-id": "lower"}, body).info.request_id == "lower"
    assert classify_response(429, {}, body).info.request_id == "from-body"
    assert classify_response(429, {}, b"").info.request_id is None


def test_the_error_reads_well_and_maps_to_the_event_error_object() -> None:
    error = classify_response(
        404, {"X-Request-Id": "r-1"}, error_body("BackupService.6105", "Vault not found")
    )
    assert (
        str(error)
        == "api error (BackupService.6105 HTTP 404 request r-1): vault does not exist: Vault not found"
    )
    assert error.info.to_detail() == {
        "kind": "api",
        "code": "BackupService.6105",
        "message": "vault does not exist: Vault not found",
        "http_status": 404,
        "retryable": False,
        "request_id": "r-1",
    }
    assert "BackupService.6105" in repr(error)


# --- Retry-After ----------------------------------------------------------------------------------

NOW = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("5", 5.0),
        ("1.5", 1.5),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-3", 0.0),
        (format_datetime(datetime(2025, 1, 1, 0, 0, 30, tzinfo=UTC), usegmt=True), 30.0),
        ("Wed, 01 Jan 2025 00:01:00 GMT", 60.0),
        ("Tue, 31 Dec 2024 23:59:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_is_taken_from_the_answer() -> None:
    error = classify_response(429, {"Retry-After": "12"}, error_body("APIGW.0308", "slow down"))
    assert error.retry_after == 12.0
    assert classify_response(429, {}, b"").retry_after is None


# --- transport failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "kind", "ambiguous"),
    [
        (http.ConnectError("refused"), "network", False),
        (http.ConnectTimeout("slow connect"), "timeout", False),
        (http.PoolTimeout("no free connection"), "timeout", False),
        (http.ReadTimeout("slow answer"), "timeout", True),
        (http.WriteTimeout("slow send"), "timeout", True),
        (http.RemoteProtocolError("Server disconnected"), "network", True),
        (http.ReadError("reset"), "network", True),
        (http.WriteError("broken pipe"), "network", True),
    ],
)
def test_transport_failures(failure: http.TransportError, kind: str, ambiguous: bool) -> None:
    error = classify_transport_error(failure)
    assert (error.info.kind, error.info.retryable, error.ambiguous, error.is_auth_failure) == (
        kind,
        True,
        ambiguous,
        False,
    )
    assert type(failure).__name__ in error.info.message
    assert error.info.http_status is None


def test_scrubbing_removes_secrets_from_the_message() -> None:
    error = classify_response(
        401, {}, error_body("APIGW.0301", "bad signature for key s3cr3t-key and tok-123")
    )
    scrubbed = error.scrubbed(["s3cr3t-key", "tok-123", "ab"])
    assert "s3cr3t-key" not in str(scrubbed)
    assert "tok-123" not in repr(scrubbed)
    assert facts(scrubbed) == facts(error)
    assert error.scrubbed(["absent"]) is error
