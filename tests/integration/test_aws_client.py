"""The AWS JSON client against a moto server over loopback HTTP (moto routes on the SigV4 scope)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from tests.fakes import FakeClock

from cbr_checkpointer.aws import AwsCredentials, AwsError, AwsJsonClient, aws_json_client
from cbr_checkpointer.retry import Retrier, RetryPolicy

pytestmark = pytest.mark.integration

REGION = "us-east-1"
NOW = 1_800_000_000.0
CREDENTIALS = AwsCredentials(
    "AKIAIOSFODNN7EXAMPLE", SecretStr("moto-secret"), SecretStr("moto-session-token")
)


@pytest.fixture
def clients(moto: str) -> Iterator[dict[str, AwsJsonClient]]:
    built = {
        service: aws_json_client(service, moto, REGION, CREDENTIALS)
        for service in ("events", "sqs", "dynamodb", "secretsmanager")
    }
    yield built
    for client in built.values():
        client.close()


def test_an_event_put_on_a_bus_comes_out_of_the_rule_target_queue(clients: dict[str, AwsJsonClient]) -> None:
    events, sqs = clients["events"], clients["sqs"]
    # Given a bus whose rule on the source forwards to a queue
    events.call("CreateEventBus", {"Name": "checkpoints"})
    queue_url = sqs.call("CreateQueue", {"QueueName": "capture"})["QueueUrl"]
    queue_arn = sqs.call("GetQueueAttributes", {"QueueUrl": queue_url, "AttributeNames": ["QueueArn"]})[
        "Attributes"
    ]["QueueArn"]
    events.call(
        "PutRule",
        {
            "Name": "all",
            "EventBusName": "checkpoints",
            "EventPattern": json.dumps({"source": ["cbr.checkpointer"]}),
        },
    )
    events.call(
        "PutTargets",
        {"Rule": "all", "EventBusName": "checkpoints", "Targets": [{"Id": "q", "Arn": queue_arn}]},
    )

    # When an event is put on the bus
    detail = {"version": "1", "outcome": "created", "idempotency_key": "k-1", "name": "ünïcode"}
    answer = events.call(
        "PutEvents",
        {
            "Entries": [
                {
                    "Source": "cbr.checkpointer",
                    "DetailType": "CBR Checkpoint Created",
                    "Detail": json.dumps(detail),
                    "EventBusName": "checkpoints",
                    "Resources": [],
                }
            ]
        },
    )

    # Then it is accepted and arrives in the queue with the same envelope fields
    assert answer["FailedEntryCount"] == 0
    received = sqs.call("ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": 10})
    (message,) = received["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["source"] == "cbr.checkpointer"
    assert envelope["detail-type"] == "CBR Checkpoint Created"
    assert envelope["detail"] == detail
    assert envelope["id"] == answer["Entries"][0]["EventId"]


def test_a_failed_dynamodb_condition_carries_the_old_item(clients: dict[str, AwsJsonClient]) -> None:
    dynamodb = clients["dynamodb"]
    dynamodb.call(
        "CreateTable",
        {
            "TableName": "ledger",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    claim = {
        "TableName": "ledger",
        "Item": {"id": {"S": "key-1"}, "status": {"S": "INPROGRESS"}},
        "ConditionExpression": "attribute_not_exists(#id)",
        "ExpressionAttributeNames": {"#id": "id"},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    assert dynamodb.call("PutItem", claim) == {}

    with pytest.raises(AwsError) as raised:
        dynamodb.call("PutItem", claim | {"Item": {"id": {"S": "key-1"}, "status": {"S": "OTHER"}}})

    error = raised.value
    assert error.code == "ConditionalCheckFailedException"
    assert error.http_status == 400
    assert error.retryable is False
    assert error.body["Item"] == {"id": {"S": "key-1"}, "status": {"S": "INPROGRESS"}}


def test_a_secret_round_trips(clients: dict[str, AwsJsonClient]) -> None:
    secrets = clients["secretsmanager"]
    created = secrets.call("CreateSecret", {"Name": "cbr/huawei", "SecretString": '{"ak": "A", "sk": "S"}'})

    answer = secrets.call("GetSecretValue", {"SecretId": "cbr/huawei"})

    assert answer["ARN"] == created["ARN"]
    assert json.loads(answer["SecretString"]) == {"ak": "A", "sk": "S"}


def test_an_unknown_resource_is_a_permanent_error_with_the_service_code(
    clients: dict[str, AwsJsonClient],
) -> None:
    with pytest.raises(AwsError) as raised:
        clients["secretsmanager"].call("GetSecretValue", {"SecretId": "missing"})

    assert raised.value.code == "ResourceNotFoundException"
    assert raised.value.retryable is False


def test_a_namespaced_sqs_error_code_is_shortened(clients: dict[str, AwsJsonClient], moto: str) -> None:
    with pytest.raises(AwsError) as raised:
        clients["sqs"].call("ReceiveMessage", {"QueueUrl": f"{moto}/123456789012/missing"})

    assert raised.value.code == "QueueDoesNotExist"


def test_an_unreachable_endpoint_is_a_retryable_transport_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    clock = FakeClock(NOW)
    policy = RetryPolicy(max_attempts=3)
    client = aws_json_client(
        "events",
        f"http://127.0.0.1:{port}",
        REGION,
        CREDENTIALS,
        timeout=2.0,
        retry=Retrier(policy, clock=clock),
    )

    with pytest.raises(AwsError) as raised:
        client.call("PutEvents", {"Entries": []})

    assert raised.value.code == "ConnectError"
    assert raised.value.http_status is None
    assert raised.value.retryable is True
    assert len(clock.slept) == policy.max_attempts - 1  # tried again, as far as the policy allows
    client.close()
