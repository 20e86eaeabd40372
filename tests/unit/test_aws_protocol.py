"""The AWS JSON protocol details of AwsJsonClient, answered by an in-memory transport (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from tests.fakes import AnsweringTransport, FakeClock

from cbr_checkpointer import http
from cbr_checkpointer.aws import AwsCredentials, AwsError, AwsJsonClient, aws_json_client
from cbr_checkpointer.retry import Retrier, RetryPolicy

CREDENTIALS = AwsCredentials("AKIAIOSFODNN7EXAMPLE", SecretStr("secret"), None)
NOW = 1_800_000_000.0


# One attempt: most tests here read how a single answer is classified, not how it is retried.
SINGLE_ATTEMPT = Retrier(RetryPolicy(max_attempts=1))


def client_answering(
    service: str,
    answer: Callable[[httpx.Request], httpx.Response],
    sent: list[httpx.Request] | None = None,
    *,
    retry: Retrier = SINGLE_ATTEMPT,
) -> AwsJsonClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if sent is not None:
            sent.append(request)
        return answer(request)

    return aws_json_client(
        service,
        "https://aws.example.test",
        "eu-west-1",
        CREDENTIALS,
        transport=AnsweringTransport(handler),
        retry=retry,
    )


@pytest.mark.parametrize(
    ("service", "target", "content_type"),
    [
        ("events", "AWSEvents.Op", "application/x-amz-json-1.1"),
        ("dynamodb", "DynamoDB_20120810.Op", "application/x-amz-json-1.0"),
        ("secretsmanager", "secretsmanager.Op", "application/x-amz-json-1.1"),
        ("sqs", "AmazonSQS.Op", "application/x-amz-json-1.0"),
    ],
)
def test_a_call_is_a_signed_json_post_to_the_root(service: str, target: str, content_type: str) -> None:
    sent: list[httpx.Request] = []
    client = client_answering(service, lambda _: httpx.Response(200, json={"ok": True}), sent)

    assert client.call("Op", {"Name": "ü"}) == {"ok": True}

    (request,) = sent
    assert request.method == "POST"
    assert str(request.url) == "https://aws.example.test/"
    assert request.headers["x-amz-target"] == target
    assert request.headers["content-type"] == content_type
    assert f"/eu-west-1/{service}/aws4_request" in request.headers["authorization"]
    assert json.loads(request.content) == {"Name": "ü"}


def test_an_empty_success_body_is_an_empty_answer() -> None:
    assert client_answering("sqs", lambda _: httpx.Response(200)).call("DeleteMessage", {}) == {}


@pytest.mark.parametrize(
    ("response", "code", "retryable"),
    [
        (
            httpx.Response(400, json={"__type": "com.amazonaws.dynamodb.v20120810#ValidationException"}),
            "ValidationException",
            False,
        ),
        (
            httpx.Response(
                400,
                headers={"x-amzn-ErrorType": "AccessDeniedException:http://internal.amazon.com/coral/"},
                json={"message": "no"},
            ),
            "AccessDeniedException",
            False,
        ),
        (
            httpx.Response(400, json={"__type": "ThrottlingException", "message": "slow down"}),
            "ThrottlingException",
            True,
        ),
        (
            httpx.Response(400, json={"__type": "ProvisionedThroughputExceededException"}),
            "ProvisionedThroughputExceededException",
            True,
        ),
        (httpx.Response(500, json={"__type": "InternalFailure"}), "InternalFailure", True),
        (httpx.Response(503, text="<html>Service Unavailable</html>"), "HTTP503", True),
        (httpx.Response(429, text=""), "HTTP429", True),
    ],
)
def test_errors_carry_the_short_code_and_whether_to_retry(
    response: httpx.Response, code: str, retryable: bool
) -> None:
    client = client_answering("dynamodb", lambda _: response)

    with pytest.raises(AwsError) as raised:
        client.call("PutItem", {})

    assert raised.value.code == code
    assert raised.value.retryable is retryable
    assert raised.value.http_status == response.status_code


def test_the_error_message_comes_from_the_body() -> None:
    client = client_answering(
        "events", lambda _: httpx.Response(400, json={"__type": "X", "message": "bus gone"})
    )

    with pytest.raises(AwsError, match="bus gone") as raised:
        client.call("PutEvents", {})

    assert raised.value.message == "bus gone"
    assert raised.value.body == {"__type": "X", "message": "bus gone"}


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]"])
def test_a_success_that_is_not_a_json_object_is_an_error(content: bytes) -> None:
    client = client_answering("events", lambda _: httpx.Response(200, content=content))

    with pytest.raises(AwsError) as raised:
        client.call("PutEvents", {})

    assert raised.value.code == "InvalidResponse"


def test_a_timeout_is_retryable_without_a_status() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise http.ReadTimeout("timed out")

    with pytest.raises(AwsError) as raised:
        client_answering("events", time_out).call("PutEvents", {})

    assert (raised.value.code, raised.value.http_status, raised.value.retryable) == (
        "ReadTimeout",
        None,
        True,
    )


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown AWS JSON service 's3'"):
        aws_json_client("s3", "https://s3.amazonaws.com", "us-east-1", CREDENTIALS)


def test_close_then_call_builds_a_fresh_connection_pool() -> None:
    client = client_answering("events", lambda _: httpx.Response(200, json={}))
    client.call("ListEventBuses", {})
    client.close()

    assert client.call("ListEventBuses", {}) == {}
    client.close()


def test_connection_failures_are_retried_until_an_answer_comes() -> None:
    sent: list[httpx.Request] = []
    clock = FakeClock(NOW)

    def refuse_twice(request: httpx.Request) -> httpx.Response:
        if len(sent) <= 2:
            raise http.ConnectError("connection refused")
        return httpx.Response(200, json={"ok": True})

    client = client_answering("sqs", refuse_twice, sent, retry=Retrier(RetryPolicy(), clock=clock))

    assert client.call("SendMessage", {}) == {"ok": True}
    assert len(sent) == 3
    assert len(clock.slept) == 2
    # The same signed body each time.
    assert len({request.content for request in sent}) == 1


def test_a_request_that_cannot_be_made_is_not_retried() -> None:
    sent: list[httpx.Request] = []
    clock = FakeClock(NOW)

    def unsupported(request: httpx.Request) -> httpx.Response:
        raise http.UnsupportedProtocol("Request URL has an unsupported protocol")

    client = client_answering("sqs", unsupported, sent, retry=Retrier(RetryPolicy(), clock=clock))

    with pytest.raises(AwsError) as raised:
        client.call("SendMessage", {})

    assert (raised.value.code, raised.value.retryable) == ("UnsupportedProtocol", False)
    assert (len(sent), clock.slept) == (1, [])


def test_retry_after_is_read_from_the_error_answer() -> None:
    client = client_answering(
        "events",
        lambda _: httpx.Response(503, headers={"Retry-After": "3"}, json={"__type": "ServiceUnavailable"}),
    )

    with pytest.raises(AwsError) as raised:
        client.call("PutEvents", {})

    assert raised.value.retry_after == 3.0
