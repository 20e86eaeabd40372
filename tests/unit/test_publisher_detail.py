"""How an outcome becomes the event's DetailType and Detail. Pure rendering, no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cbr_checkpointer.domain import (
    BackupRequest,
    ErrorInfo,
    FieldError,
    Outcome,
    Rejected,
    Trigger,
    WatchCheck,
)
from cbr_checkpointer.publisher import detail_type, event_detail

PROJECT_ID = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
TRIGGER = Trigger(
    kind="schedule",
    id="arn:aws:scheduler:::schedule/default/nightly",
    time=datetime(2026, 11, 27, 2, 0, tzinfo=UTC),
)
BODY = {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": "nightly-20261127", "incremental": True}}}
CHECKPOINT = {"id": "8b0851a8-adf3-4f4c-a914-dead08bf9664", "status": "protecting", "vault": None}


def request(*, dry_run: bool = False) -> BackupRequest:
    return BackupRequest(
        idempotency_key="key-1", project_id=PROJECT_ID, body=BODY, trigger=TRIGGER, dry_run=dry_run
    )


def rejected(payload: Any, **located: str) -> Rejected:
    return Rejected(
        idempotency_key="key-2",
        trigger=Trigger(kind="sqs", id="msg-1"),
        errors=(FieldError("incremntal", "unknown field"), FieldError("vault_id", "must be a UUID")),
        payload=payload,
        **located,
    )


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("created", "CBR Checkpoint Created"),
        ("failed", "CBR Checkpoint Failed"),
        ("rejected", "CBR Backup Request Rejected"),
        ("validated", "CBR Backup Request Validated"),
    ],
)
def test_each_outcome_has_its_detail_type(kind: Any, expected: str) -> None:
    item = rejected({}) if kind == "rejected" else request(dry_run=kind == "validated")

    assert detail_type(Outcome(kind=kind, item=item)) == expected


def test_created() -> None:
    detail = event_detail(Outcome(kind="created", item=request(), checkpoint=CHECKPOINT))

    assert detail == {
        "version": "1",
        "outcome": "created",
        "idempotency_key": "key-1",
        "project_id": PROJECT_ID,
        "vault_id": VAULT_ID,
        "request": BODY,
        "checkpoint": CHECKPOINT,
        "trigger": {"kind": "schedule", "id": TRIGGER.id, "time": "2026-11-27T02:00:00+00:00"},
        "duplicate": False,
    }


def test_created_again_from_the_ledger_is_marked_duplicate() -> None:
    detail = event_detail(Outcome(kind="created", item=request(), checkpoint=CHECKPOINT, duplicate=True))

    assert detail["duplicate"] is True


def test_failed() -> None:
    error = ErrorInfo(
        kind="api",
        code="BackupService.6105",
        message="vault capacity is insufficient",
        http_status=400,
        request_id="req-9",
    )

    detail = event_detail(Outcome(kind="failed", item=request(), error=error))

    assert detail == {
        "version": "1",
        "outcome": "failed",
        "idempotency_key": "key-1",
        "project_id": PROJECT_ID,
        "vault_id": VAULT_ID,
        "request": BODY,
        "error": {
            "kind": "api",
            "code": "BackupService.6105",
            "message": "vault capacity is insufficient",
            "http_status": 400,
            "retryable": False,
            "request_id": "req-9",
        },
        "trigger": {"kind": "schedule", "id": TRIGGER.id, "time": "2026-11-27T02:00:00+00:00"},
    }


def test_validated_shows_the_body_that_would_be_sent() -> None:
    detail = event_detail(Outcome(kind="validated", item=request(dry_run=True)))

    assert detail == {
        "version": "1",
        "outcome": "validated",
        "idempotency_key": "key-1",
        "project_id": PROJECT_ID,
        "vault_id": VAULT_ID,
        "request": BODY,
        "trigger": {"kind": "schedule", "id": TRIGGER.id, "time": "2026-11-27T02:00:00+00:00"},
    }


def test_rejected_names_the_fields_and_carries_the_payload() -> None:
    payload = {"vault_id": "not-a-uuid", "incremntal": True}

    detail = event_detail(Outcome(kind="rejected", item=rejected(payload, project_id=PROJECT_ID)))

    assert detail == {
        "version": "1",
        "outcome": "rejected",
        "idempotency_key": "key-2",
        "project_id": PROJECT_ID,
        "error": {
            "kind": "validation",
            "code": "InvalidRequest",
            "message": "incremntal: unknown field; vault_id: must be a UUID",
            "retryable": False,
        },
        "errors": [
            {"field": "incremntal", "message": "unknown field"},
            {"field": "vault_id", "message": "must be a UUID"},
        ],
        "trigger": {"kind": "sqs", "id": "msg-1"},
        "payload": payload,
    }


def test_a_payload_of_exactly_32_kib_is_kept_whole() -> None:
    payload = "x" * (32 * 1024 - 2)  # the JSON text adds two quotes
    assert len(json.dumps(payload)) == 32 * 1024

    detail = event_detail(Outcome(kind="rejected", item=rejected(payload)))

    assert detail["payload"] == payload
    assert "payload_truncated" not in detail


def test_a_larger_payload_becomes_the_first_32_kib_of_its_json() -> None:
    payload = {"requests": [{"vault_id": f"v-{index}"} for index in range(3000)]}
    text = json.dumps(payload, separators=(",", ":"))
    assert len(text) > 32 * 1024

    detail = event_detail(Outcome(kind="rejected", item=rejected(payload)))

    assert detail["payload"] == text[: 32 * 1024]
    assert detail["payload_truncated"] is True


def test_truncation_never_splits_a_character() -> None:
    payload = "é" * 20000  # two UTF-8 bytes each; the cut falls inside one

    detail = event_detail(Outcome(kind="rejected", item=rejected(payload)))

    truncated = detail["payload"]
    assert len(truncated.encode("utf-8")) <= 32 * 1024
    assert json.dumps(payload, ensure_ascii=False).startswith(truncated)
    assert len(truncated.encode("utf-8")) > 32 * 1024 - 2


def test_the_region_a_request_went_to_is_in_its_events_and_its_completion_events() -> None:
    far = BackupRequest(
        idempotency_key="key-3", project_id=PROJECT_ID, body=BODY, trigger=TRIGGER, region="ap-southeast-1"
    )
    check = WatchCheck(
        idempotency_key="key-3",
        project_id=PROJECT_ID,
        vault_id=VAULT_ID,
        checkpoint_id=str(CHECKPOINT["id"]),
        request=BODY,
        trigger=TRIGGER,
        first_seen=datetime(2026, 11, 27, 2, 0, 5, tzinfo=UTC),
        region="ap-southeast-1",
    )

    details = [
        event_detail(Outcome(kind="created", item=far, checkpoint=CHECKPOINT)),
        event_detail(Outcome(kind="failed", item=far, error=ErrorInfo("api", "no"))),
        event_detail(Outcome(kind="validated", item=far)),
        event_detail(Outcome(kind="completed", item=check, checkpoint=CHECKPOINT, resources=())),
    ]

    assert [detail["region"] for detail in details] == ["ap-southeast-1"] * 4
    # A request of no named region (to a configured endpoint of no known region) says none
    assert "region" not in event_detail(Outcome(kind="created", item=request(), checkpoint=CHECKPOINT))
