"""The idempotency ledger: claim a key before calling CBR, store the result after.

A key moves through: absent -> in progress (a lease held until the holder's Lambda deadline)
-> completed (the stored result, republished on redelivery). A lease that ran out means its holder
died mid-call; whoever claims next must reconcile against CBR before creating anything.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from cbr_checkpointer.aws import AwsError, AwsJsonClient


@dataclass(frozen=True, slots=True)
class Claimed:
    """The caller holds the key. `reconcile_since` is set when an earlier holder may have created it."""

    reconcile_since: float | None = None


@dataclass(frozen=True, slots=True)
class Completed:
    """The key already has a result; serve it again instead of calling CBR."""

    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Busy:
    """Another live invocation holds the key until `lease_until`."""

    lease_until: float


ClaimResult = Claimed | Completed | Busy


class Ledger(Protocol):
    def claim(self, key: str, *, now: float, lease_until: float) -> ClaimResult: ...

    def complete(self, key: str, result: dict[str, Any], *, now: float) -> None: ...

    def release(self, key: str, *, now: float, reconcile_since: float | None) -> None:
        """Give the key back after a transient failure.

        `reconcile_since` is set when CBR may already have acted on the key: the next claimer then
        looks for a checkpoint created since that time before creating one.
        """
        ...


@dataclass(slots=True)
class _Entry:
    status: str
    claimed_at: float
    lease_until: float = 0.0
    reconcile_since: float | None = None
    result: dict[str, Any] | None = None
    expires_at: float = 0.0


class MemoryLedger:
    """A ledger for local runs and tests: one process, one dict, the same rules as the DynamoDB one."""

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl_seconds = ttl_seconds
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, *, now: float, lease_until: float) -> ClaimResult:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at <= now:
                entry = None
            if entry is not None and entry.status == "completed" and entry.result is not None:
                return Completed(entry.result)
            if entry is not None and entry.lease_until > now:
                return Busy(entry.lease_until)
            reconcile_since = None
            if entry is not None:
                reconcile_since = (
                    entry.reconcile_since if entry.reconcile_since is not None else entry.claimed_at
                )
            self._entries[key] = _Entry(
                status="in_progress",
                claimed_at=now,
                lease_until=lease_until,
                reconcile_since=reconcile_since,
                expires_at=now + self._ttl_seconds,
            )
            return Claimed(reconcile_since)

    def complete(self, key: str, result: dict[str, Any], *, now: float) -> None:
        with self._lock:
            self._entries[key] = _Entry(
                status="completed", claimed_at=now, result=result, expires_at=now + self._ttl_seconds
            )

    def release(self, key: str, *, now: float, reconcile_since: float | None) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.status != "in_progress":
                return
            if reconcile_since is None:
                del self._entries[key]
                return
            entry.lease_until = now
            entry.reconcile_since = reconcile_since


class DynamoDBLedger:
    """The ledger in a DynamoDB table (partition key `id`, TTL attribute `expiration`), by conditional writes.

    Item: `id`, `status` (in_progress | completed), `claimed_at`, `lease_until`, `reconcile_since`,
    `result` (JSON), `expiration`. Every transition is one conditional write, so two invocations racing
    for a key cannot both hold it.
    """

    def __init__(self, dynamodb: AwsJsonClient, table: str, *, ttl_seconds: float) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._ttl_seconds = ttl_seconds

    def claim(self, key: str, *, now: float, lease_until: float) -> ClaimResult:
        item = {
            "id": {"S": key},
            "status": {"S": "in_progress"},
            "claimed_at": _number(now),
            "lease_until": _number(lease_until),
            "expiration": _number(int(now + self._ttl_seconds)),
        }
        try:
            answer = self._dynamodb.call(
                "PutItem",
                {
                    "TableName": self._table,
                    "Item": item,
                    "ConditionExpression": (
                        "attribute_not_exists(id) OR expiration <= :now "
                        "OR (#status = :in_progress AND lease_until <= :now)"
                    ),
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":now": _number(now), ":in_progress": {"S": "in_progress"}},
                    "ReturnValues": "ALL_OLD",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                },
            )
        except AwsError as error:
            if error.code != "ConditionalCheckFailedException":
                raise
            held = error.body.get("Item", {})
            if held.get("status", {}).get("S") == "completed":
                return Completed(json.loads(held["result"]["S"]))
            return Busy(float(held.get("lease_until", {}).get("N", now)))
        previous = answer.get("Attributes", {})
        if previous.get("status", {}).get("S") != "in_progress" or float(previous["expiration"]["N"]) <= now:
            return Claimed()
        reconcile_since = float(previous.get("reconcile_since", previous["claimed_at"])["N"])
        self._mark_reconcile(key, reconcile_since, lease_until=lease_until)
        return Claimed(reconcile_since)

    def complete(self, key: str, result: dict[str, Any], *, now: float) -> None:
        self._dynamodb.call(
            "PutItem",
            {
                "TableName": self._table,
                "Item": {
                    "id": {"S": key},
                    "status": {"S": "completed"},
                    "result": {"S": json.dumps(result, separators=(",", ":"))},
                    "expiration": _number(int(now + self._ttl_seconds)),
                },
            },
        )

    def release(self, key: str, *, now: float, reconcile_since: float | None) -> None:
        if reconcile_since is None:
            request: dict[str, Any] = {"TableName": self._table, "Key": {"id": {"S": key}}}
            operation = "DeleteItem"
        else:
            operation = "UpdateItem"
            request = {
                "TableName": self._table,
                "Key": {"id": {"S": key}},
                "UpdateExpression": "SET lease_until = :now, reconcile_since = :since",
                "ExpressionAttributeValues": {":now": _number(now), ":since": _number(reconcile_since)},
            }
        request["ConditionExpression"] = "#status = :in_progress"
        request["ExpressionAttributeNames"] = {"#status": "status"}
        request.setdefault("ExpressionAttributeValues", {})[":in_progress"] = {"S": "in_progress"}
        try:
            self._dynamodb.call(operation, request)
        except AwsError as error:
            if error.code != "ConditionalCheckFailedException":
                raise

    def _mark_reconcile(self, key: str, reconcile_since: float, *, lease_until: float) -> None:
        self._dynamodb.call(
            "UpdateItem",
            {
                "TableName": self._table,
                "Key": {"id": {"S": key}},
                "UpdateExpression": "SET reconcile_since = :since",
                "ConditionExpression": "lease_until = :lease",
                "ExpressionAttributeValues": {
                    ":since": _number(reconcile_since),
                    ":lease": _number(lease_until),
                },
            },
        )


def _number(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}
