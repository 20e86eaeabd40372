"""One logging path: every line is Powertools JSON with the invocation's keys, and no secret in any form.

The lines are read where the function writes them: the stream of the Powertools handler.
"""

from __future__ import annotations

import io
import json
import logging
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from aws_lambda_powertools.logging import correlation_paths
from tests.fakes import ScriptedNetwork

import cbr_checkpointer.cbr.client as cbr_client
import cbr_checkpointer.cbr.iam as iam
import cbr_checkpointer.credentials as credentials
import cbr_checkpointer.publisher as publisher
from cbr_checkpointer import http
from cbr_checkpointer.cbr.errors import classify_transport_error
from cbr_checkpointer.local_context import LocalContext
from cbr_checkpointer.observability import SERVICE, logger
from cbr_checkpointer.redaction import REDACTED, SecretRegistry, forms_of, redact, remember

CORRELATION_ID = "evt-7d1c2a"
# A token as a rotated secret may hold it: with a trailing newline, a quote, a backslash, '&' and '/'.
PLANTED = "tok-Zq9/x+R&y=\"s\\p'\n"


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """What the function writes."""
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous_stream = handler.setStream(stream)
    try:
        yield Captured(stream)
    finally:
        handler.setStream(previous_stream)


def in_invocation(body: Callable[[], None]) -> str:
    """Run `body` as a Lambda invocation (Powertools' decorator); answers the request id."""
    context = LocalContext()

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> None:
        body()

    handler({"id": CORRELATION_ID}, context)
    return context.aws_request_id


def test_every_line_of_ours_is_json_with_the_invocation_keys(captured: Captured) -> None:
    def body() -> None:
        cbr_client.logger.info("CBR %s %s -> %d", "POST", "/v3/p/checkpoints", 200)
        iam.logger.warning("IAM answered", extra={"status": 201})
        credentials.logger.info("secrets extension not reachable")
        publisher.logger.error("event not published")

    request_id = in_invocation(body)

    lines = captured.lines()
    assert [line["name"] for line in lines] == [
        f"{SERVICE}.cbr_checkpointer.cbr.client",
        f"{SERVICE}.cbr_checkpointer.cbr.iam",
        f"{SERVICE}.cbr_checkpointer.credentials",
        f"{SERVICE}.cbr_checkpointer.publisher",
    ]
    for line in lines:
        assert line["correlation_id"] == CORRELATION_ID, line
        assert line["function_request_id"] == request_id, line
        assert line["service"] == SERVICE
    assert lines[0]["message"] == "CBR POST /v3/p/checkpoints -> 200"
    assert lines[1]["status"] == 201


def test_keys_appended_in_a_thread_reach_every_logger_of_that_thread_only(captured: Captured) -> None:
    def record(message_id: str) -> None:
        logger.thread_safe_append_keys(message_id=message_id)
        cbr_client.logger.info("from %s", message_id)
        publisher.logger.info("and from %s", message_id)

    def body() -> None:
        threads = [threading.Thread(target=record, args=(f"msg-{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    in_invocation(body)

    lines = captured.lines()
    assert len(lines) == 8
    for line in lines:
        assert line["message"].endswith(line["message_id"])
        assert line["correlation_id"] == CORRELATION_ID


def _forms(secret: str) -> dict[str, str]:
    return {
        "raw": secret,
        "escaped": secret.encode("unicode_escape").decode("ascii"),
        "repr": repr(secret),
        "bytes repr": repr(secret.encode()),
        "json": json.dumps(secret),
        "url": quote(secret, safe=""),
        "url plus": quote_plus(secret),
    }


def _assert_no_form_of(secret: str, text: str) -> None:
    for form in forms_of(secret):
        assert form not in text, f"{form!r} leaked"


@pytest.mark.parametrize("form", list(_forms(PLANTED)))
def test_a_secret_is_masked_in_every_form_in_message_arguments_extra_and_exception(
    captured: Captured, form: str
) -> None:
    remember(PLANTED)
    written = _forms(PLANTED)[form]

    def body() -> None:
        cbr_client.logger.info("sent %s", written)
        cbr_client.logger.info(f"sent {written}")
        iam.logger.info("answered", extra={"detail": {"header": written, "list": [written]}})
        try:
            raise ValueError(f"refused {written}")
        except ValueError:
            credentials.logger.exception("failed")
        logger.append_keys(leaked_key=written)

        publisher.logger.info("after the key was appended")

    in_invocation(body)

    lines = captured.lines()
    assert len(lines) == 5
    _assert_no_form_of(PLANTED, captured.text)
    assert REDACTED in lines[0]["message"]
    assert lines[3]["exception_name"] == "ValueError"
    assert REDACTED in lines[3]["exception"]


def test_a_token_h11_refuses_never_reaches_the_error_or_the_log(captured: Captured) -> None:
    token = "MIIhiddentoken-0123456789\n"  # a trailing newline, which HTTP refuses in a header value
    remember(token)
    client = http.Client(
        "https://iam.example.test",
        timeout=http.timeout(5.0),
        max_connections=1,
        transport=http.ConnectionPool(
            ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), max_connections=1, connect=ScriptedNetwork()
        ),
    )

    def body() -> None:
        with pytest.raises(http.LocalProtocolError) as refused:
            client.request("GET", "/v3/p/checkpoints", headers={"X-Auth-Token": token})
        failure = classify_transport_error(refused.value)
        assert "MIIhiddentoken" not in f"{refused.value} {failure.info.message}"
        try:
            raise refused.value
        except http.LocalProtocolError:
            cbr_client.logger.exception("CBR call failed: %s", failure.info.message)

    in_invocation(body)

    assert "MIIhiddentoken" not in captured.text
    assert any(line.get("exception_name") == "LocalProtocolError" for line in captured.lines())


def test_a_line_written_outside_an_invocation_is_json_too(captured: Captured) -> None:
    remember(PLANTED)
    credentials.logger.info("during init: %r", PLANTED)

    (line,) = captured.lines()
    assert line["message"] == f"during init: '{REDACTED}'"
    assert (line["name"], line["service"], line["level"]) == (
        f"{SERVICE}.cbr_checkpointer.credentials",
        SERVICE,
        "INFO",
    )


def test_records_are_masked_in_place_for_every_handler_after_ours(caplog: pytest.LogCaptureFixture) -> None:
    remember(PLANTED)
    with caplog.at_level(logging.INFO):
        cbr_client.logger.info("sent %s", PLANTED)
    assert caplog.records[-1].getMessage() == f"sent {REDACTED}"
    _assert_no_form_of(PLANTED, caplog.text)


def test_a_call_whose_arguments_do_not_fit_its_format_is_written_masked_not_raised(
    captured: Captured,
) -> None:
    remember(PLANTED)
    cbr_client.logger.info("only one %s", PLANTED, "and one too many")

    (line,) = captured.lines()
    assert line["message"].startswith("only one %s ")
    _assert_no_form_of(PLANTED, captured.text)


# -- the registry


def test_redact_masks_secrets_given_for_one_call_and_headers_and_signatures_whatever_their_value() -> None:
    text = (
        "(b'Authorization', b'SDK-HMAC-SHA256 Access=AK, Signature=0123456789abcdef0123') "
        "(b'X-Security-Token', b'anything') one-off-secret"
    )
    masked = redact(text, also=["one-off-secret"])
    assert masked == f"(b'Authorization', b'{REDACTED}') (b'X-Security-Token', b'{REDACTED}') {REDACTED}"
    assert redact("Signature=0123456789abcdef0123") == f"Signature={REDACTED}"


def test_the_registry_forgets_the_oldest_secret_beyond_its_capacity() -> None:
    registry = SecretRegistry(capacity=2)
    registry.remember("first-secret", "second-secret", "third-secret")
    assert registry.redact("first-secret second-secret third-secret") == f"first-secret {REDACTED} {REDACTED}"


def test_values_too_short_to_be_secrets_are_left_alone() -> None:
    registry = SecretRegistry()
    registry.remember("abc", None)
    assert registry.redact("abc") == "abc"


# Remembered at import, as a module's credentials constant is when it is built: outside any test.
remember("remembered-outside-any-test")


def test_a_secret_remembered_outside_this_test_masks_nothing_in_it() -> None:
    """Each test has a registry of its own (tests/conftest.py): no other test's secret masks its lines."""
    assert redact("the remembered-outside-any-test line") == "the remembered-outside-any-test line"
    remember("remembered-outside-any-test")
    assert redact("the remembered-outside-any-test line") == f"the {REDACTED} line"
