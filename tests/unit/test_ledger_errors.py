"""The DynamoDB ledger speaks the domain's language: DynamoDB failures become LedgerUnavailable, while a
failed condition stays the answer it is (the key is busy or done)."""

from __future__ import annotations

from typing import Any

import pytest

from cbr_checkpointer.aws import AwsError
from cbr_checkpointer.domain import Busy, LedgerUnavailable
from cbr_checkpointer.ledger import DynamoDBLedger

NOW = 1_800_000_000.0


class ScriptedDynamoDB:
    """Raises the error it was given for every call, and keeps the operations called."""

    def __init__(self, error: AwsError) -> None:
        self.error = error
        self.operations: list[str] = []

    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.operations.append(operation)
        raise self.error


def ledger(error: AwsError) -> tuple[DynamoDBLedger, ScriptedDynamoDB]:
    dynamodb = ScriptedDynamoDB(error)
    return DynamoDBLedger(dynamodb, "ledger", ttl_seconds=3600), dynamodb


def test_a_dynamodb_failure_is_the_ledger_unavailable_on_every_operation() -> None:
    down = AwsError("InternalServerError", "Internal error", http_status=500, retryable=True)
    table, dynamodb = ledger(down)

    with pytest.raises(LedgerUnavailable) as claim:
        table.claim("k", now=NOW, lease_until=NOW + 60)
    with pytest.raises(LedgerUnavailable):
        table.release("k", now=NOW, reconcile_since=None)

    assert (claim.value.code, claim.value.http_status, claim.value.retryable) == (
        "InternalServerError",
        500,
        True,
    )
    assert claim.value.__cause__ is down
    assert dynamodb.operations == ["PutItem", "DeleteItem"]


def test_a_failed_condition_is_an_answer_not_an_outage() -> None:
    held = AwsError(
        "ConditionalCheckFailedException",
        "The conditional request failed",
        http_status=400,
        retryable=False,
        body={"Item": {"status": {"S": "in_progress"}, "lease_until": {"N": str(NOW + 30)}}},
    )
    table, _ = ledger(held)

    assert table.claim("k", now=NOW, lease_until=NOW + 60) == Busy(NOW + 30)
    table.release("k", now=NOW, reconcile_since=None)  # someone else finished it: nothing to give back
