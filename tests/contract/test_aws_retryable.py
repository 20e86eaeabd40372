"""What the AWS client retries is what botocore's `standard` retry mode retries, read from botocore itself."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.exceptions import HTTPClientError
from botocore.retries import standard
from botocore.session import get_session

from cbr_checkpointer import http
from cbr_checkpointer.aws.client import JSON_SERVICES
from cbr_checkpointer.aws.retryable import (
    MODELED_RETRYABLE_ERROR_CODES,
    THROTTLING_ERROR_CODES,
    THROTTLING_STATUSES,
    TRANSIENT_ERROR_CODES,
    TRANSIENT_STATUSES,
    is_retryable_error,
    is_retryable_transport_error,
)


def test_the_throttling_codes_are_botocores() -> None:
    assert frozenset(standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES) == THROTTLING_ERROR_CODES


def test_the_transient_codes_and_statuses_are_botocores() -> None:
    assert frozenset(standard.TransientRetryableChecker._TRANSIENT_ERROR_CODES) == TRANSIENT_ERROR_CODES
    assert frozenset(standard.TransientRetryableChecker._TRANSIENT_STATUS_CODES) == TRANSIENT_STATUSES


def test_the_throttling_statuses_are_botocores() -> None:
    assert frozenset(standard.ThrottlingStatusCodeChecker._THROTTLING_STATUS_CODES) == THROTTLING_STATUSES


def test_the_modeled_retryable_errors_are_those_of_the_services_called() -> None:
    session = get_session()
    modeled: set[str] = set()
    for service in JSON_SERVICES:
        model = session.get_service_model(service)
        for name in model.operation_names:
            for shape in model.operation_model(name).error_shapes:
                if shape.metadata.get("retryable") is not None:
                    modeled.add(shape.metadata.get("error", {}).get("code") or shape.name)
    assert modeled == MODELED_RETRYABLE_ERROR_CODES


def test_botocore_retries_every_connection_failure() -> None:
    # The transport rule below leans on this: botocore retries any ConnectionError or HTTPClientError.
    assert set(standard.TransientRetryableChecker._TRANSIENT_EXCEPTION_CLS) == {
        BotocoreConnectionError,
        HTTPClientError,
    }


def _botocore_retries(code: str | None, status: int) -> bool:
    """botocore's own verdict (standard mode, attempts left) on an error answer to a DynamoDB PutItem."""
    response: dict[str, Any] = {"Error": {"Code": code, "Message": ""}} if code is not None else {"Error": {}}
    http_response = AWSResponse("https://example.test", status, {}, None)
    context = standard.RetryContext(
        attempt_number=1,
        parsed_response=response,
        http_response=http_response,
        operation_model=get_session().get_service_model("dynamodb").operation_model("PutItem"),
    )
    return bool(standard.StandardRetryConditions(max_attempts=3).is_retryable(context))


CASES = [
    *((code, 400) for code in sorted(THROTTLING_ERROR_CODES | TRANSIENT_ERROR_CODES)),
    *((None, status) for status in sorted(TRANSIENT_STATUSES | THROTTLING_STATUSES)),
    ("ReplicatedWriteConflictException", 400),
    ("ValidationException", 400),
    ("ConditionalCheckFailedException", 400),
    ("ResourceNotFoundException", 400),
    ("AccessDeniedException", 403),
    ("InternalFailure", 500),
    ("SomethingElse", 501),
    (None, 400),
    (None, 404),
]


@pytest.mark.parametrize(("code", "status"), CASES)
def test_an_error_answer_is_retried_exactly_when_botocore_retries_it(code: str | None, status: int) -> None:
    assert is_retryable_error(code or f"HTTP{status}", status) is _botocore_retries(code, status)


@pytest.mark.parametrize(
    "error",
    [
        http.ConnectError("refused"),
        http.ConnectTimeout("slow"),
        http.ReadTimeout("slow"),
        http.ReadError("reset"),
        http.WriteError("broken pipe"),
        http.RemoteProtocolError("closed without a response"),
        http.PoolTimeout("no connection free"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_request_that_got_no_answer_is_retried(error: http.TransportError) -> None:
    assert is_retryable_transport_error(error)


@pytest.mark.parametrize(
    "error",
    [http.UnsupportedProtocol("ftp://"), http.LocalProtocolError("bad header")],
    ids=lambda error: type(error).__name__,
)
def test_a_request_that_could_not_be_made_is_not(error: http.TransportError) -> None:
    assert not is_retryable_transport_error(error)
