"""The idempotency ledger: claim a key before calling CBR, store the result after.

A key moves through: absent -> in progress (a lease held until the holder's Lambda deadline)
-> completed (the stored result, republished on redelivery). A lease that ran out means its holder
died mid-call; whoever claims next must reconcile against CBR before creating anything. The first
claim also pins the request (a document the caller gives: for a backup request, its body and what
identifies it), kept through completion: a later holder that must reconcile gets it back, so that every
delivery of a key looks for, and sends, the same request (a name rendered from the time of the
delivery would otherwise differ between deliveries, and reconciliation by name would miss), and a
later claimer of a completed key can tell whether it asks for what was done.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from cbr_checkpointer.aws import AwsError, AwsJsonApi
from cbr_checkpointer.domain import (
    Busy,
    Claimed,
    ClaimResult,
    Completed,
    ErrorInfo,
    LedgerUnavailable,
    ResourceResult,
    StepDone,
    StoredOutcome,
    StoredResult,
)
from cbr_checkpointer.values import value


@value(frozen=False)
class _Entry:
    status: str
    claimed_at: float
    lease_until: float = 0.0
    reconcile_since: float | None = None
    result: StoredResult | None = None
    expires_at: float = 0.0
    request: dict[str, Any] | None = None


def owner_key(checkpoint_id: str) -> str:
    """The record naming the request key a checkpoint belongs to (no request key starts with `c:`)."""
    return f"c:{checkpoint_id}"


class MemoryLedger:
    """A ledger for local runs and tests: one process, one dict, the same rules as the DynamoDB one."""

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl_seconds = ttl_seconds
        self._entries: dict[str, _Entry] = {}
        # owner_key(checkpoint id) -> (request key, expires at)
        self._owners: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def own(self, checkpoint_id: str, key: str, *, now: float) -> bool:
        with self._lock:
            held = self._owners.get(owner_key(checkpoint_id))
            if held is not None and held[0] != key and held[1] > now:
                return False
            self._owners[owner_key(checkpoint_id)] = (key, now + self._ttl_seconds)
            return True

    def claim(
        self, key: str, *, now: float, lease_until: float, request: dict[str, Any] | None = None
    ) -> ClaimResult:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at <= now:
                entry = None
            if entry is not None and entry.status == "completed" and entry.result is not None:
                return Completed(entry.result, request=entry.request)
            if entry is not None and entry.lease_until > now:
                return Busy(entry.lease_until)
            reconcile_since = None
            pinned = request
            if entry is not None:
                reconcile_since = (
                    entry.reconcile_since if entry.reconcile_since is not None else entry.claimed_at
                )
                pinned = entry.request if entry.request is not None else request
            self._entries[key] = _Entry(
                status="in_progress",
                claimed_at=now,
                lease_until=lease_until,
                reconcile_since=reconcile_since,
                expires_at=now + self._ttl_seconds,
                request=pinned,
            )
            if reconcile_since is None:
                return Claimed()
            return Claimed(reconcile_since, request=pinned)

    def complete(self, key: str, result: StoredResult, *, now: float) -> None:
        with self._lock:
            claimed = self._entries.get(key)
            self._entries[key] = _Entry(
                status="completed",
                claimed_at=now,
                result=result,
                expires_at=now + self._ttl_seconds,
                request=None if claimed is None else claimed.request,
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
    `request` (JSON, pinned by the first claim and kept with the result), `result` (JSON), `expiration`;
    and per checkpoint made or adopted, `c:<checkpoint id>` with the `owner` request key. Every
    transition is one conditional write, so two invocations racing for a key cannot both hold it.
    """

    def __init__(self, dynamodb: AwsJsonApi, table: str, *, ttl_seconds: float) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._ttl_seconds = ttl_seconds

    def claim(
        self, key: str, *, now: float, lease_until: float, request: dict[str, Any] | None = None
    ) -> ClaimResult:
        item = {
            "id": {"S": key},
            "status": {"S": "in_progress"},
            "claimed_at": _number(now),
            "lease_until": _number(lease_until),
            "expiration": _number(int(now + self._ttl_seconds)),
        }
        if request is not None:
            item["request"] = {"S": json.dumps(request, separators=(",", ":"))}
        try:
            answer = self._call(
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
                pinned = held.get("request")
                return Completed(
                    stored_result(json.loads(held["result"]["S"])),
                    request=None if pinned is None else json.loads(pinned["S"]),
                )
            return Busy(float(held.get("lease_until", {}).get("N", now)))
        previous = answer.get("Attributes", {})
        if previous.get("status", {}).get("S") != "in_progress" or float(previous["expiration"]["N"]) <= now:
            return Claimed()
        reconcile_since = float(previous.get("reconcile_since", previous["claimed_at"])["N"])
        pinned = previous.get("request") or item.get("request")
        self._mark_reconcile(key, reconcile_since, lease_until=lease_until, request=pinned)
        return Claimed(reconcile_since, request=None if pinned is None else json.loads(pinned["S"]))

    def complete(self, key: str, result: StoredResult, *, now: float) -> None:
        # An update, not a put: the request pinned by the first claim stays with the result.
        self._call(
            "UpdateItem",
            {
                "TableName": self._table,
                "Key": {"id": {"S": key}},
                "UpdateExpression": "SET #status = :completed, #result = :result, expiration = :expiration "
                "REMOVE lease_until, reconcile_since",
                "ExpressionAttributeNames": {"#status": "status", "#result": "result"},
                "ExpressionAttributeValues": {
                    ":completed": {"S": "completed"},
                    ":result": {"S": json.dumps(stored_json(result), separators=(",", ":"))},
                    ":expiration": _number(int(now + self._ttl_seconds)),
                },
            },
        )

    def own(self, checkpoint_id: str, key: str, *, now: float) -> bool:
        try:
            self._call(
                "PutItem",
                {
                    "TableName": self._table,
                    "Item": {
                        "id": {"S": owner_key(checkpoint_id)},
                        "owner": {"S": key},
                        "expiration": _number(int(now + self._ttl_seconds)),
                    },
                    "ConditionExpression": "attribute_not_exists(id) OR #owner = :key OR expiration <= :now",
                    "ExpressionAttributeNames": {"#owner": "owner"},
                    "ExpressionAttributeValues": {":key": {"S": key}, ":now": _number(now)},
                },
            )
        except AwsError as error:
            if error.code != "ConditionalCheckFailedException":
                raise
            return False
        return True

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
            self._call(operation, request)
        except AwsError as error:
            if error.code != "ConditionalCheckFailedException":
                raise

    def _mark_reconcile(
        self, key: str, reconcile_since: float, *, lease_until: float, request: dict[str, str] | None
    ) -> None:
        call: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"id": {"S": key}},
            "UpdateExpression": "SET reconcile_since = :since",
            "ConditionExpression": "lease_until = :lease",
            "ExpressionAttributeValues": {":since": _number(reconcile_since), ":lease": _number(lease_until)},
        }
        if request is not None:
            # REQUEST is a DynamoDB reserved word.
            call["UpdateExpression"] += ", #request = :request"
            call["ExpressionAttributeNames"] = {"#request": "request"}
            call["ExpressionAttributeValues"][":request"] = request
        self._call("UpdateItem", call)

    def _call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One DynamoDB call. A failed condition stays an AwsError for the caller to read; any other
        failure is the ledger being unavailable."""
        try:
            return self._dynamodb.call(operation, payload)
        except AwsError as error:
            if error.code == "ConditionalCheckFailedException":
                raise
            raise LedgerUnavailable(
                error.code, error.message, http_status=error.http_status, retryable=error.retryable
            ) from error


def _number(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def stored_json(result: StoredResult) -> dict[str, Any]:
    """A stored result as the ledger keeps it (JSON)."""
    if isinstance(result, StepDone):
        if result.final:
            return {"final": True, "message_id": result.message_id}
        if result.next_attempt is not None:
            return {"next": result.next_attempt}
        return {"scheduled": result.scheduled}
    document: dict[str, Any] = {"outcome": result.kind}
    if result.resources is not None:
        document["resources"] = [resource.to_detail() for resource in result.resources]
    if result.checkpoint is not None:
        document["checkpoint"] = result.checkpoint
    if result.error is not None:
        document["error"] = result.error.to_detail()
    return document


def stored_result(document: dict[str, Any]) -> StoredResult:
    """A stored result read back from its JSON."""
    if "outcome" not in document:
        return StepDone(
            scheduled=bool(document.get("scheduled")),
            next_attempt=document.get("next"),
            final=bool(document.get("final")),
            message_id=document.get("message_id"),
        )
    error = document.get("error")
    resources = document.get("resources")
    return StoredOutcome(
        document["outcome"],
        checkpoint=document.get("checkpoint"),
        error=ErrorInfo(**error) if error else None,
        resources=None
        if resources is None
        else tuple(ResourceResult.from_detail(entry) for entry in resources),
    )
