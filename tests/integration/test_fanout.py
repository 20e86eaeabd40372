"""Selections over loopback: the handler lists the emulator's vaults, creates or fans out through moto's
request queue, and the SQS path creates the rest."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from cbr_checkpointer.handler import InvocationFailed, lambda_handler
from cbr_checkpointer.local_context import LocalContext
from cbr_emulator import Fault
from devtools.sandbox import (
    PROJECT_ID,
    SECOND_VAULT_ID,
    UNSELECTED_VAULT_ID,
    VAULT_ID,
    Sandbox,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"


def selection_event() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / "selection.json").read_text(encoding="utf-8"))
    return loaded


def fleet(sandbox: Sandbox, count: int) -> tuple[dict[str, Any], list[str]]:
    """`count` new vaults and the selection of them alone (the session's emulator keeps its vaults, so
    each test tags its own with a value of its own)."""
    tag = {"fleet": uuid.uuid4().hex}
    ids = sorted(str(uuid.uuid4()) for _ in range(count))
    for vault_id in ids:
        sandbox.emulator.add_vault(vault_id, [], tags=tag)
    return selection_event() | {"select": {"tags": tag}}, ids


def by_type(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [event["detail"] for event in events if event["detail-type"] == detail_type]


def created_vaults(sandbox: Sandbox) -> list[str]:
    return sorted(checkpoint["vault"]["id"] for checkpoint in sandbox.emulator.created)


def test_a_selection_by_tag_is_expanded_and_each_matching_vault_gets_one_checkpoint(sandbox: Sandbox) -> None:
    result = lambda_handler(selection_event(), LocalContext())

    events = sandbox.published_events()
    (expanded,) = by_type(events, "CBR Backup Selection Expanded")
    assert expanded["outcome"] == "expanded"
    assert (expanded["selected"], expanded["queued"]) == (2, 0)
    assert expanded["vault_ids"] == sorted([VAULT_ID, SECOND_VAULT_ID])  # not the env=dev vault
    assert expanded["selector"] == {"tags": {"backup": ["nightly"], "env": ["prod", "staging"]}}
    assert expanded["project_id"] == PROJECT_ID
    created = by_type(events, "CBR Checkpoint Created")
    assert sorted(detail["vault_id"] for detail in created) == sorted([VAULT_ID, SECOND_VAULT_ID])
    assert {detail["request"]["checkpoint"]["parameters"]["name"] for detail in created} == {
        "fleet-20240501-0200"
    }
    assert UNSELECTED_VAULT_ID not in created_vaults(sandbox)
    assert len(sandbox.emulator.created) == 2
    assert result["selections"] == [
        {"idempotency_key": expanded["idempotency_key"], "outcome": "expanded", "selected": 2, "queued": 0}
    ]


def test_a_selection_larger_than_the_inline_maximum_goes_through_the_request_queue(sandbox: Sandbox) -> None:
    event, ids = fleet(sandbox, 25)
    with sandbox.configured(FANOUT_INLINE_MAX="10"):
        lambda_handler(event, LocalContext())
        assert sandbox.emulator.created == []
        messages = sandbox.request_messages()
        assert sorted(message["fanout"]["vault_id"] for message in messages) == ids
        (expanded,) = by_type(sandbox.published_events(), "CBR Backup Selection Expanded")
        assert (expanded["selected"], expanded["queued"]) == (25, 25)

        sandbox.run_request_queue(lambda_handler)

    events = sandbox.published_events()
    created = by_type(events, "CBR Checkpoint Created")
    assert sorted(detail["vault_id"] for detail in created) == ids
    assert created_vaults(sandbox) == ids
    assert {detail["trigger"]["kind"] for detail in created} == {"schedule"}


def test_a_retried_trigger_after_the_queue_ran_creates_nothing_twice(sandbox: Sandbox) -> None:
    event, ids = fleet(sandbox, 12)
    with sandbox.configured(FANOUT_INLINE_MAX="10"):
        lambda_handler(event, LocalContext())
        sandbox.run_request_queue(lambda_handler)
        sandbox.published_events()
        lambda_handler(event, LocalContext())
        sandbox.run_request_queue(lambda_handler)
    events = sandbox.published_events()

    assert created_vaults(sandbox) == ids
    again = by_type(events, "CBR Checkpoint Created")
    assert len(again) == 12
    assert all(detail["duplicate"] for detail in again)


def test_a_listing_that_stays_throttled_hands_the_trigger_back_and_creates_nothing(sandbox: Sandbox) -> None:
    throttled = {"error_code": "APIGW.0308", "error_msg": "throttled"}
    sandbox.emulator.faults.append(
        Fault(path_suffix="/vault/resource_instances/action", status=429, body=throttled, times=100)
    )

    with pytest.raises(InvocationFailed, match="failed transiently"):
        lambda_handler(selection_event(), LocalContext(timeout_seconds=8))

    assert sandbox.emulator.created == []
    assert by_type(sandbox.published_events(), "CBR Backup Selection Expanded") == []
