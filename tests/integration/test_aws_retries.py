"""AwsJsonClient retries throttles, transient errors and 5xx within the deadline, against moto on loopback.

A faulting proxy (the fault matrix's) stands between the client and moto: it answers the scripted faults
itself and forwards everything else, so the retry that succeeds really writes to moto.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.fakes import FakeClock, HighestJitter

from cbr_checkpointer.aws import AwsError, AwsJsonClient, aws_json_client
from cbr_checkpointer.retry import Deadline, Retrier, RetryPolicy
from devtools.faults import FaultProxy, Rule
from devtools.sandbox import AWS_TEST_CREDENTIALS, REGION

pytestmark = pytest.mark.integration

NOW = 1_800_000_000.0
TABLE = "ledger"
THROTTLED = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded.",
}
POLICY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, safety_margin=5.0)


@pytest.fixture
def proxy(moto: str) -> Iterator[FaultProxy]:
    started = FaultProxy("aws-retry-proxy").start(moto)
    yield started
    started.stop()


@pytest.fixture
def fake_time() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def deadline() -> Deadline:
    return Deadline()


@pytest.fixture
def dynamodb(proxy: FaultProxy, fake_time: FakeClock, deadline: Deadline) -> Iterator[AwsJsonClient]:
    retry = Retrier(POLICY, deadline=deadline, clock=fake_time, rng=HighestJitter())
    client = aws_json_client("dynamodb", proxy.url, REGION, AWS_TEST_CREDENTIALS, retry=retry)
    client.call(
        "CreateTable",
        {
            "TableName": TABLE,
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    yield client
    client.close()


def put(key: str) -> dict[str, object]:
    return {"TableName": TABLE, "Item": {"id": {"S": key}}}


def stored(client: AwsJsonClient, key: str) -> bool:
    answer = client.call("GetItem", {"TableName": TABLE, "Key": {"id": {"S": key}}})
    return "Item" in answer


def test_a_throttled_write_is_retried_until_it_goes_through(
    dynamodb: AwsJsonClient, proxy: FaultProxy, fake_time: FakeClock
) -> None:
    proxy.rules.append(Rule(target=".PutItem", status=400, body=THROTTLED, times=2))

    assert dynamodb.call("PutItem", put("key-1")) == {}

    assert proxy.count(target=".PutItem") == 3
    assert stored(dynamodb, "key-1")
    assert fake_time.slept == [1.0, 2.0]  # full jitter's bound, doubling


def test_a_validation_error_is_not_retried(
    dynamodb: AwsJsonClient, proxy: FaultProxy, fake_time: FakeClock
) -> None:
    with pytest.raises(AwsError) as raised:
        dynamodb.call("PutItem", {"TableName": TABLE, "Item": {"id": {"N": "not-a-number"}}})

    assert raised.value.code == "ValidationException"
    assert raised.value.retryable is False
    assert proxy.count(target=".PutItem") == 1
    assert fake_time.slept == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "x"}),
        (503, b"<html>Service Unavailable</html>"),
        (400, {"__type": "com.amazon.coral.availability#ThrottlingException", "message": "Rate exceeded"}),
        (400, {"__type": "RequestLimitExceeded", "message": "account limit"}),
    ],
    ids=["500", "503-html", "ThrottlingException", "RequestLimitExceeded"],
)
def test_server_errors_and_throttles_are_retried_once_each(
    dynamodb: AwsJsonClient, proxy: FaultProxy, status: int, body: object
) -> None:
    proxy.rules.append(Rule(target=".PutItem", status=status, body=body))

    dynamodb.call("PutItem", put("key-2"))

    assert proxy.count(target=".PutItem") == 2
    assert stored(dynamodb, "key-2")


def test_retries_stop_where_the_deadline_leaves_no_room(
    dynamodb: AwsJsonClient, proxy: FaultProxy, fake_time: FakeClock, deadline: Deadline
) -> None:
    # 3.5 s before the safety margin: pauses of 1 s and 2 s fit, the next (4 s) does not.
    deadline.set(NOW + POLICY.safety_margin + 3.5)
    proxy.rules.append(Rule(target=".PutItem", status=400, body=THROTTLED, times=10))

    with pytest.raises(AwsError) as raised:
        dynamodb.call("PutItem", put("key-3"))

    assert raised.value.code == "ProvisionedThroughputExceededException"
    assert raised.value.retryable is True
    assert proxy.count(target=".PutItem") == 3
    assert fake_time.slept == [1.0, 2.0]
    assert not stored(dynamodb, "key-3")


def test_attempts_are_bounded_without_a_deadline(
    dynamodb: AwsJsonClient, proxy: FaultProxy, fake_time: FakeClock
) -> None:
    server_error = {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "x"}
    proxy.rules.append(Rule(target=".PutItem", status=500, body=server_error, times=10))

    with pytest.raises(AwsError) as raised:
        dynamodb.call("PutItem", put("key-4"))

    assert raised.value.http_status == 500
    assert proxy.count(target=".PutItem") == POLICY.max_attempts
    assert len(fake_time.slept) == POLICY.max_attempts - 1


def test_retry_after_is_waited_for(dynamodb: AwsJsonClient, proxy: FaultProxy, fake_time: FakeClock) -> None:
    proxy.rules.append(Rule(target=".PutItem", status=503, body=b"", headers={"Retry-After": "6"}))

    dynamodb.call("PutItem", put("key-5"))

    assert proxy.count(target=".PutItem") == 2
    assert fake_time.slept == [6.0]


def test_a_retry_after_past_the_deadline_is_not_waited_for(
    dynamodb: AwsJsonClient, proxy: FaultProxy, fake_time: FakeClock, deadline: Deadline
) -> None:
    deadline.set(NOW + POLICY.safety_margin + 10.0)
    proxy.rules.append(Rule(target=".PutItem", status=503, body=b"", headers={"Retry-After": "60"}))

    with pytest.raises(AwsError):
        dynamodb.call("PutItem", put("key-6"))

    assert proxy.count(target=".PutItem") == 1
    assert fake_time.slept == []
