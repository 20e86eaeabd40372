"""The selection form: criteria → Selection, and a Selection + its listed vaults → one request per vault."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cbr_checkpointer.domain import BackupRequest, Rejected, Selection
from cbr_checkpointer.expansion import expand_selection
from cbr_checkpointer.models import VaultBackupReq
from cbr_checkpointer.triggers import (
    RequestDefaults,
    RequestItem,
    fanout_message,
    parse_invocation,
    parse_sqs_record,
)
from devtools.records import sqs_record

CBR_NAME_RULE = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fa5]{1,64}")  # CBR's documented checkpoint-name rule

EVENTS = Path(__file__).resolve().parents[2] / "events"
PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
OTHER_VAULT = "7d2c9a10-5e3b-4f6a-8c1d-2e4f6a8b0c12"
THIRD_VAULT = "0e5e7a3c-9d1b-4b8f-a2c4-6d8e0f1a3b5c"
POLICY = "6f1e2d3c-4b5a-4987-8a6b-5c4d3e2f1a0b"
NOW = datetime(2024, 5, 1, 2, 0, 7, tzinfo=UTC)
DEFAULTS = RequestDefaults(project_id=PROJECT, default_vault_id=None, regions=frozenset({"cn-north-4"}))


def invoke(
    event: Any, *, defaults: RequestDefaults = DEFAULTS, request_id: str = "req-1"
) -> list[RequestItem]:
    return parse_invocation(event, request_id=request_id, now=NOW, defaults=defaults)


def selection(event: Any, **options: Any) -> Selection:
    items = invoke(event, **options)
    assert len(items) == 1
    assert isinstance(items[0], Selection), items[0]
    return items[0]


def rejected_fields(event: Any) -> list[str]:
    items = invoke(event)
    assert len(items) == 1
    assert isinstance(items[0], Rejected), items[0]
    return [error.field for error in items[0].errors]


# -- parsing ---------------------------------------------------------------------------------------------


def test_a_selection_by_tags_keeps_its_criteria_and_defaults_its_parameters() -> None:
    item = selection({"select": {"tags": {"env": "prod", "tier": ["gold", "silver"]}}})

    assert item.selector == {"tags": {"env": ["prod"], "tier": ["gold", "silver"]}}
    assert item.parameters == {"incremental": True, "auto_trigger": False}
    assert (item.project_id, item.region, item.dry_run) == (PROJECT, None, False)
    assert (item.trigger.kind, item.trigger.id, item.trigger.time) == ("direct", "req-1", NOW)
    assert item.idempotency_key.startswith("d:")


def test_every_criterion_and_parameter_together() -> None:
    item = selection(
        {
            "select": {"tags": {"env": []}, "policy_id": POLICY, "object_type": "server", "all": True},
            "name": "fleet-{time:%Y%m%d}",
            "description": "nightly fleet",
            "incremental": False,
            "auto_trigger": True,
            "region": "cn-north-4",
            "dry_run": True,
            "idempotency_key": "fleet-2024-05-01",
        }
    )
    assert item.selector == {"tags": {"env": []}, "policy_id": POLICY, "object_type": "server", "all": True}
    assert item.parameters == {
        "name": "fleet-20240501",
        "description": "nightly fleet",
        "incremental": False,
        "auto_trigger": True,
    }
    assert (item.idempotency_key, item.region, item.dry_run) == ("u:fleet-2024-05-01", "cn-north-4", True)


def test_all_alone_selects_every_vault() -> None:
    assert selection({"select": {"all": True}}).selector == {"all": True}


def test_a_configured_dry_run_holds_for_a_selection() -> None:
    defaults = RequestDefaults(project_id=PROJECT, default_vault_id=None, dry_run=True)
    assert selection({"select": {"all": True}, "dry_run": False}, defaults=defaults).dry_run is True


@pytest.mark.parametrize(
    ("select", "field"),
    [
        ({}, "select"),
        ([], "select"),
        ("all", "select"),
        ({"tags": {}}, "select.tags"),
        ({"tags": []}, "select.tags"),
        ({"colour": "blue"}, "select.colour"),
        ({"all": False}, "select.all"),
        ({"all": "true"}, "select.all"),
        ({"policy_id": "nightly"}, "select.policy_id"),
        ({"object_type": "database"}, "select.object_type"),
        ({"tags": {"env": 5}}, "select.tags.env"),
        ({"tags": {"env": ["a", "a"]}}, "select.tags.env"),
        ({"tags": {"env": [str(n) for n in range(11)]}}, "select.tags.env"),
        ({"tags": {"env": "*"}}, "select.tags.env"),
        ({"tags": {"env": ["ok", "v" * 256]}}, "select.tags.env[1]"),
        ({"tags": {"": "x"}}, "select.tags."),
        ({"tags": {" env": "x"}}, "select.tags. env"),
        ({"tags": {"k" * 128: "x"}}, f"select.tags.{'k' * 64}…"),
        ({"tags": {"env\n": "x"}}, "select.tags.'env\\n'"),
        ({"tags": {f"k{n}": "x" for n in range(11)}}, "select.tags"),
    ],
)
def test_an_empty_unknown_or_broken_criterion_is_rejected_by_name(select: Any, field: str) -> None:
    assert rejected_fields({"select": select}) == [field]


def test_a_fuzzy_tag_value_and_an_empty_one_follow_cbr_s_rules() -> None:
    item = selection({"select": {"tags": {"env": ["*prod", ""], "k" * 127: "v" * 255}}})
    assert item.selector["tags"]["env"] == ["*prod", ""]


@pytest.mark.parametrize(
    "field",
    ["vault_id", "checkpoint", "resources", "resource_details", "policy_id", "retention_duration_days"],
)
def test_a_selection_backs_up_whole_vaults_only(field: str) -> None:
    assert rejected_fields({"select": {"all": True}, field: VAULT}) == [field]


def test_selection_parameters_follow_the_api_s_rules() -> None:
    assert rejected_fields({"select": {"all": True}, "name": "a b"}) == ["name"]
    assert rejected_fields({"select": {"all": True}, "name": "x-{user}"}) == ["name"]
    assert rejected_fields({"select": {"all": True}, "description": "<b>"}) == ["description"]
    assert rejected_fields({"select": {"all": True}, "incremental": "yes"}) == ["incremental"]
    assert rejected_fields({"select": {"all": True}, "incremntal": False}) == ["incremntal"]


def test_a_selection_item_of_a_many_request_is_keyed_by_its_index() -> None:
    items = invoke({"requests": [{"vault_id": VAULT}, {"select": {"object_type": "disk"}}]})
    assert isinstance(items[0], BackupRequest)
    assert isinstance(items[1], Selection)
    assert items[0].idempotency_key != items[1].idempotency_key


def test_a_selection_can_come_over_sqs() -> None:
    record = sqs_record(json.dumps({"select": {"tags": {"backup": "nightly"}}}), message_id="m-1")
    (item,) = parse_sqs_record(record, defaults=DEFAULTS)
    assert isinstance(item, Selection)
    assert (item.trigger.kind, item.trigger.id) == ("sqs", "m-1")


def test_the_selection_sample() -> None:
    item = selection(json.loads((EVENTS / "selection.json").read_text()))
    assert item.selector == {"tags": {"backup": ["nightly"], "env": ["prod", "staging"]}}
    assert item.trigger.kind == "schedule"
    assert item.parameters["name"] == "fleet-20240501-0200"


# -- expansion -------------------------------------------------------------------------------------------


def test_a_selection_expands_into_one_whole_vault_request_per_vault() -> None:
    item = selection({"select": {"all": True}, "region": "cn-north-4", "description": "fleet"})

    requests = expand_selection(item, [VAULT, OTHER_VAULT, VAULT])

    assert [type(request) for request in requests] == [BackupRequest, BackupRequest]
    first, second = (request for request in requests if isinstance(request, BackupRequest))
    assert (first.vault_id, second.vault_id) == (VAULT, OTHER_VAULT)
    for request in (first, second):
        # The body is a valid CreateCheckpoint body for the whole vault
        VaultBackupReq.model_validate(request.body)
        assert "resources" not in request.body["checkpoint"]["parameters"]
        assert request.body["checkpoint"]["parameters"]["description"] == "fleet"
        assert CBR_NAME_RULE.fullmatch(request.name)
        assert (request.project_id, request.region, request.trigger) == (PROJECT, "cn-north-4", item.trigger)
        assert request.idempotency_key.startswith("d:")
    assert first.idempotency_key != second.idempotency_key
    assert first.name != second.name  # each derived from its own key


def test_a_retried_trigger_re_expands_to_the_same_keys() -> None:
    event = {
        "select": {"tags": {"env": "prod"}},
        "schedule_arn": "arn:s",
        "scheduled_time": "2024-05-01T02:00:00Z",
    }
    first = expand_selection(selection(event, request_id="req-1"), [VAULT, OTHER_VAULT])
    retry = expand_selection(selection(event, request_id="req-2"), [OTHER_VAULT, VAULT, THIRD_VAULT])
    keys = {item.vault_id: item.idempotency_key for item in first if isinstance(item, BackupRequest)}
    retried = {item.vault_id: item.idempotency_key for item in retry if isinstance(item, BackupRequest)}
    assert retried[VAULT] == keys[VAULT]
    assert retried[OTHER_VAULT] == keys[OTHER_VAULT]
    assert retried[THIRD_VAULT] not in keys.values()


def test_a_vault_s_key_under_a_sender_s_key_is_stable_across_releases_and_paths() -> None:
    # Given a selection under a key its sender chose, expanded inline and through a fan-out message
    item = selection(
        {
            "select": {"tags": {"backup": "nightly"}},
            "idempotency_key": "fleet-2024-05-01",
            "region": "cn-north-4",
            "description": "fleet",
        }
    )
    (inline,) = expand_selection(item, [VAULT])
    (queued,) = parse_sqs_record(sqs_record(fanout_message(item, VAULT), message_id="m-1"), defaults=DEFAULTS)

    # Then the vault's key is the documented derivation, computed here on its own: "d:" and the SHA-256
    # of the canonical JSON of ["vault", the selection's key, the vault] and the vault's request
    # (project, region, parameters); a redelivery after a deployment finds the record it claimed
    assert item.idempotency_key == "u:fleet-2024-05-01"
    material = json.dumps(
        [
            ["vault", "u:fleet-2024-05-01", VAULT],
            [PROJECT, "cn-north-4", {"incremental": True, "auto_trigger": False, "description": "fleet"}],
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    expected = "d:" + hashlib.sha256(material.encode("ascii")).hexdigest()
    assert expected == "d:09d1892e5b07f4f2676da515fc5b973158b07995b3910cea9d253448a7124683"
    assert isinstance(inline, BackupRequest)
    assert isinstance(queued, BackupRequest)
    assert inline.idempotency_key == queued.idempotency_key == expected
    # And the name it gets is derived from that key alike
    name = "cbr-" + hashlib.sha256(expected.encode("utf-8")).hexdigest()[:20]
    assert inline.name == queued.name == name


def test_another_selection_or_firing_expands_to_other_keys() -> None:
    base = {"select": {"all": True}, "schedule_arn": "arn:s", "scheduled_time": "2024-05-01T02:00:00Z"}
    keys = set()
    for event in (
        base,
        base | {"scheduled_time": "2024-05-02T02:00:00Z"},
        base | {"select": {"object_type": "disk"}},
    ):
        (request,) = expand_selection(selection(event), [VAULT])
        keys.add(request.idempotency_key)
    assert len(keys) == 3


def test_a_given_name_and_dry_run_go_to_every_vault() -> None:
    item = selection({"select": {"all": True}, "name": "fleet", "dry_run": True})
    requests = expand_selection(item, [VAULT, OTHER_VAULT])
    assert [
        (request.name, request.dry_run) for request in requests if isinstance(request, BackupRequest)
    ] == [
        ("fleet", True),
        ("fleet", True),
    ]


def test_a_listed_vault_id_that_is_not_a_uuid_is_rejected_not_sent() -> None:
    item = selection({"select": {"all": True}})
    requests = expand_selection(item, [VAULT, "../../other"])
    assert isinstance(requests[0], BackupRequest)
    assert isinstance(requests[1], Rejected)
    assert [error.field for error in requests[1].errors] == ["vault_id"]


def test_no_vault_no_request() -> None:
    assert expand_selection(selection({"select": {"all": True}}), []) == []
