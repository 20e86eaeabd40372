"""The outbound event: one EventBridge event per outcome, published at least once."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools import Logger

from cbr_checkpointer.aws import AwsJsonClient
from cbr_checkpointer.aws.partial_batch import PartialBatchSender, put_events
from cbr_checkpointer.domain import BackupRequest, Expansion, Outcome, OutcomeKind, Rejected, WatchCheck
from cbr_checkpointer.observability import SERVICE
from cbr_checkpointer.retry import Retrier
from cbr_checkpointer.values import value

logger = Logger(service=SERVICE, child=True)

DETAIL_VERSION = "1"
DETAIL_TYPES: dict[OutcomeKind, str] = {
    "created": "CBR Checkpoint Created",
    "failed": "CBR Checkpoint Failed",
    "rejected": "CBR Backup Request Rejected",
    "validated": "CBR Backup Request Validated",
    "completed": "CBR Checkpoint Completed",
    "timed_out": "CBR Checkpoint Timed Out",
}
EXPANDED_DETAIL_TYPE = "CBR Backup Selection Expanded"
# How many of a selection's vault ids its Expanded event lists (`selected` counts them all).
MAX_EXPANDED_VAULT_IDS = 100
PAYLOAD_LIMIT_BYTES = 32 * 1024
# PutEvents: at most 10 entries a call, and at most 256 KiB per entry and per call, sizes counted
# as https://docs.aws.amazon.com/eventbridge/latest/userguide/calculate-putevents-entry-size.html
MAX_ENTRIES_PER_CALL = 10
MAX_ENTRY_BYTES = 256 * 1024
TIME_FIELD_BYTES = 14
# The per-resource lists an event may carry, where each is in the Detail. An entry over the size limit
# gives up their last entries, longest list first, and says how many next to the list
# (`<list>_omitted`), so that a vault of many resources still gets its event.
RESOURCE_LISTS: tuple[tuple[str, ...], ...] = (
    ("resources",),
    ("checkpoint", "vault", "resources"),
    ("checkpoint", "vault", "skipped_resources"),
    ("request", "checkpoint", "parameters", "resource_details"),
    ("request", "checkpoint", "parameters", "resources"),
)


def detail_type(outcome: Outcome) -> str:
    return DETAIL_TYPES[outcome.kind]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def event_detail(outcome: Outcome, *, payload_limit_bytes: int = PAYLOAD_LIMIT_BYTES) -> dict[str, Any]:
    """The event's `Detail`: only the keys that apply to this outcome, never null placeholders."""
    item = outcome.item
    detail: dict[str, Any] = {
        "version": DETAIL_VERSION,
        "outcome": outcome.kind,
        "idempotency_key": item.idempotency_key,
        "trigger": item.trigger.to_detail(),
    }
    if isinstance(item, Rejected):
        return detail | _rejected_fields(item, payload_limit_bytes)
    if isinstance(item, WatchCheck):
        return detail | _completion_fields(outcome, item)
    return detail | _request_fields(outcome, item)


def expansion_detail(expansion: Expansion) -> tuple[str, dict[str, Any]]:
    """The detail type and `Detail` of an expansion: Expanded, or when listing failed for good, Failed
    with `"stage": "selection"` (no vault was backed up)."""
    selection = expansion.selection
    detail: dict[str, Any] = {
        "version": DETAIL_VERSION,
        "outcome": "expanded" if expansion.error is None else "failed",
        "idempotency_key": selection.idempotency_key,
        "trigger": selection.trigger.to_detail(),
        "project_id": selection.project_id,
    }
    if selection.region is not None:
        detail["region"] = selection.region
    detail["selector"] = selection.selector
    detail["parameters"] = selection.parameters
    detail["dry_run"] = selection.dry_run
    if expansion.error is not None:
        return DETAIL_TYPES["failed"], detail | {"stage": "selection", "error": expansion.error.to_detail()}
    shown = list(expansion.vault_ids[:MAX_EXPANDED_VAULT_IDS])
    detail |= {"selected": len(expansion.vault_ids), "queued": expansion.queued, "vault_ids": shown}
    if len(shown) < len(expansion.vault_ids):
        detail["vault_ids_omitted"] = len(expansion.vault_ids) - len(shown)
    return EXPANDED_DETAIL_TYPE, detail


def _request_fields(outcome: Outcome, request: BackupRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "project_id": request.project_id,
        **_region(request.region),
        "vault_id": request.vault_id,
        "request": request.body,
    }
    if outcome.checkpoint is not None:
        fields["checkpoint"] = outcome.checkpoint
    if outcome.error is not None:
        fields["error"] = outcome.error.to_detail()
    if outcome.kind == "created":
        fields["duplicate"] = outcome.duplicate
    return fields


def _completion_fields(outcome: Outcome, check: WatchCheck) -> dict[str, Any]:
    """The end of following a checkpoint: Completed, Failed (`"stage": "completion"`) or Timed Out."""
    fields: dict[str, Any] = {
        "stage": "completion",
        "project_id": check.project_id,
        **_region(check.region),
        "vault_id": check.vault_id,
        "request": check.request,
        "checkpoint": outcome.checkpoint if outcome.checkpoint is not None else {"id": check.checkpoint_id},
        "resources": [resource.to_detail() for resource in outcome.resources or ()],
        "first_seen": check.first_seen.isoformat(),
        "checks": check.attempt,
        "duplicate": outcome.duplicate,
    }
    if outcome.error is not None:
        fields["error"] = outcome.error.to_detail()
    return fields


def _region(region: str | None) -> dict[str, str]:
    """`region` when known: a request that names none goes to a configured endpoint of no named region."""
    return {} if region is None else {"region": region}


def _rejected_fields(rejected: Rejected, payload_limit_bytes: int) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if rejected.project_id is not None:
        fields["project_id"] = rejected.project_id
    if rejected.vault_id is not None:
        fields["vault_id"] = rejected.vault_id
    fields["error"] = rejected.error_info().to_detail()
    fields["errors"] = [{"field": error.field, "message": error.message} for error in rejected.errors]
    return fields | _payload_fields(rejected.payload, payload_limit_bytes)


def _trim_longest_list(detail: dict[str, Any], overflow_bytes: int) -> bool:
    """Drop from the longest of the RESOURCE_LISTS about `overflow_bytes` worth of its last entries (one at
    least), counting them in its `_omitted` marker; False when no list has an entry left to drop."""
    found: list[tuple[int, tuple[str, ...], list[Any]]] = []
    for path in RESOURCE_LISTS:
        value: Any = detail
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, list) and value:
            found.append((len(_json(value).encode("utf-8")), path, value))
    if not found:
        return False
    list_bytes, path, entries = max(found, key=lambda candidate: candidate[0])
    dropped = min(len(entries), max(1, math.ceil(overflow_bytes * len(entries) / list_bytes)))
    parent = detail
    for key in path[:-1]:
        parent = parent[key]
    name = path[-1]
    parent[name] = entries[: len(entries) - dropped]
    parent[f"{name}_omitted"] = parent.get(f"{name}_omitted", 0) + dropped
    return True


def _payload_fields(payload: Any, limit_bytes: int) -> dict[str, Any]:
    """The payload itself, or when its compact JSON text is longer, that text cut to `limit_bytes`."""
    text = _json(payload).encode("utf-8")
    if len(text) <= limit_bytes:
        return {"payload": payload}
    # Cutting UTF-8 bytes may split a character; drop the partial one.
    return {"payload": text[:limit_bytes].decode("utf-8", errors="ignore"), "payload_truncated": True}


@value
class _Entry:
    fields: dict[str, Any]
    size: int


def _entry_size(source: str, detail_type_: str, detail: str) -> int:
    return TIME_FIELD_BYTES + sum(len(part.encode("utf-8")) for part in (source, detail_type_, detail))


class EventPublisher:
    """Publishes outcomes to one bus; `publish` returns the outcomes it could not publish.

    Entries EventBridge failed retryably are sent again, alone, as `retry` allows (the AWS client
    retries a call that failed as a whole).
    """

    def __init__(
        self,
        events: AwsJsonClient,
        *,
        source: str,
        bus_name: str,
        retry: Retrier | None = None,
    ) -> None:
        self._source = source
        self._bus_name = bus_name
        self._sender = PartialBatchSender[_Entry](
            lambda batch: put_events(events, [entry.fields for entry in batch]),
            retry=retry or Retrier(),
            max_entries=MAX_ENTRIES_PER_CALL,
            max_bytes=MAX_ENTRY_BYTES,
            size=lambda entry: entry.size,
        )

    def publish(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Put one event per outcome, up to 10 per call; return those not published, in the order given."""
        entries: list[_Entry] = []
        sent: list[Outcome] = []
        unpublished: list[Outcome] = []
        for outcome in outcomes:
            entry = self._entry(outcome)
            if entry is None:
                unpublished.append(_give_up(outcome, "EntryTooLarge"))
            else:
                entries.append(entry)
                sent.append(outcome)
        for outcome, failure in zip(sent, self._sender.send(entries), strict=True):
            if failure is not None:
                unpublished.append(_give_up(outcome, failure.code))
        failed = {id(outcome) for outcome in unpublished}
        return [outcome for outcome in outcomes if id(outcome) in failed]

    def publish_expansions(self, expansions: Sequence[Expansion]) -> list[Expansion]:
        """Put one event per expansion (Expanded, or Failed at stage selection); return those not
        published, in the order given."""
        entries = []
        for expansion in expansions:
            # Its vault ids are capped and its criteria bounded: the entry stays far below 256 KiB.
            kind, detail = expansion_detail(expansion)
            text = _json(detail)
            entries.append(_Entry(self._fields(kind, text), _entry_size(self._source, kind, text)))
        unpublished: list[Expansion] = []
        for expansion, failure in zip(expansions, self._sender.send(entries), strict=True):
            if failure is not None:
                logger.error(
                    "event not published: %s for a selection (idempotency_key %s)",
                    failure.code,
                    expansion.selection.idempotency_key,
                )
                unpublished.append(expansion)
        return unpublished

    def _fields(self, kind: str, detail: str) -> dict[str, Any]:
        return {
            "Source": self._source,
            "DetailType": kind,
            "Detail": detail,
            "EventBusName": self._bus_name,
            "Resources": [],
            "Time": time.time(),
        }

    def _entry(self, outcome: Outcome) -> _Entry | None:
        kind = detail_type(outcome)
        detail = _json(event_detail(outcome))
        size = _entry_size(self._source, kind, detail)
        if isinstance(outcome.item, Rejected):
            # Only the original payload can give way; each pass removes at least the overflow.
            limit = min(len(_json(outcome.item.payload).encode("utf-8")), PAYLOAD_LIMIT_BYTES)
            while size > MAX_ENTRY_BYTES and limit > 0:
                limit = max(0, limit - (size - MAX_ENTRY_BYTES))
                detail = _json(event_detail(outcome, payload_limit_bytes=limit))
                size = _entry_size(self._source, kind, detail)
        if size > MAX_ENTRY_BYTES:
            # A copy to cut (the outcome's dicts are shared); each pass drops at least one entry.
            fields = json.loads(detail)
            while size > MAX_ENTRY_BYTES and _trim_longest_list(fields, size - MAX_ENTRY_BYTES):
                detail = _json(fields)
                size = _entry_size(self._source, kind, detail)
        if size > MAX_ENTRY_BYTES:
            return None
        return _Entry(self._fields(kind, detail), size)


def _give_up(outcome: Outcome, code: str) -> Outcome:
    # The code and key only: the detail may hold a user's payload.
    logger.error(
        "event not published: %s for %r (idempotency_key %s)",
        code,
        detail_type(outcome),
        outcome.item.idempotency_key,
    )
    return outcome
