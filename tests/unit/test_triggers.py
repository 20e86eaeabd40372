"""Trigger envelopes → work items: every shape, every request form, keys, names, and junk."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cbr_checkpointer.domain import BackupRequest, Rejected, Selection
from cbr_checkpointer.triggers import (
    MAX_ERRORS,
    RequestDefaults,
    RequestItem,
    is_sqs_batch,
    parse_invocation,
    parse_sqs_record,
)
from devtools import records

EVENTS = Path(__file__).resolve().parents[2] / "events"
PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
OTHER_PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
OTHER_VAULT = "7d2c9a10-5e3b-4f6a-8c1d-2e4f6a8b0c12"
SERVER = "94eba8b2-acc9-4d82-badc-127144cc5526"
SCHEDULE_ARN = "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/nightly"
NOW = datetime(2024, 5, 1, 2, 0, 7, tzinfo=UTC)
DEFAULTS = RequestDefaults(
    project_id=PROJECT, default_vault_id=VAULT, allowed_project_ids=frozenset({PROJECT, OTHER_PROJECT})
)
NO_DEFAULTS = RequestDefaults(
    project_id=None, default_vault_id=None, allowed_project_ids=frozenset({PROJECT})
)
DERIVED = re.compile(r"d:[0-9a-f]{64}")

CBR_NAME_RULE = re.compile(r"[A-Za-z0-9_\-\u4e00-\u9fa5]{1,64}")  # CBR's documented checkpoint-name rule


def invoke(
    event: Any, *, defaults: RequestDefaults = DEFAULTS, request_id: str = "req-1"
) -> list[RequestItem]:
    return parse_invocation(event, request_id=request_id, now=NOW, defaults=defaults)


def accepted(event: Any, **options: Any) -> BackupRequest:
    items = invoke(event, **options)
    assert len(items) == 1
    assert isinstance(items[0], BackupRequest), items[0]
    return items[0]


def rejected(event: Any, **options: Any) -> Rejected:
    items = invoke(event, **options)
    assert len(items) == 1
    assert isinstance(items[0], Rejected), items[0]
    return items[0]


def fields(item: Rejected) -> list[str]:
    return [error.field for error in item.errors]


def parameters(item: BackupRequest) -> dict[str, Any]:
    params: dict[str, Any] = item.body["checkpoint"]["parameters"]
    return params


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def sqs_record(body: str, *, message_id: str = "msg-1", sent: str | None = "1714528800000") -> dict[str, Any]:
    return records.sqs_record(
        body, message_id=message_id, sent_millis=sent, queue="requests", region="eu-west-1"
    )


def backup_requests(items: list[RequestItem]) -> list[BackupRequest]:
    assert all(isinstance(item, BackupRequest) for item in items), items
    return [item for item in items if isinstance(item, BackupRequest)]


def rejections(items: list[RequestItem]) -> list[Rejected]:
    assert all(isinstance(item, Rejected) for item in items), items
    return [item for item in items if isinstance(item, Rejected)]


def is_derived(key: str) -> bool:
    return DERIVED.fullmatch(key) is not None


def only(items: list[RequestItem]) -> RequestItem:
    assert len(items) == 1
    return items[0]


# --- request forms ------------------------------------------------------------------------------------


def test_shorthand_becomes_the_native_body_with_explicit_defaults() -> None:
    # Given the smallest possible request
    item = accepted({"vault_id": VAULT})

    # Then the body is the exact CBR body, with incremental, auto_trigger and a name always present
    assert item.body == {
        "checkpoint": {
            "vault_id": VAULT,
            "parameters": {"auto_trigger": False, "incremental": True, "name": parameters(item)["name"]},
        }
    }
    assert CBR_NAME_RULE.fullmatch(parameters(item)["name"])
    assert is_derived(item.idempotency_key)
    assert (item.project_id, item.region, item.dry_run) == (PROJECT, None, False)
    assert (item.trigger.kind, item.trigger.id, item.trigger.time) == ("direct", "req-1", NOW)


def test_shorthand_passes_every_parameter_through() -> None:
    request = {
        "vault_id": VAULT,
        "name": "ecs-1",
        "description": "before the upgrade",
        "incremental": False,
        "auto_trigger": False,
        "resources": [SERVER],
        "resource_details": [{"id": SERVER, "type": "OS::Nova::Server", "name": "ecs-1"}],
        "policy_id": "policy-1",
        "retention_duration_days": 30,
    }
    item = accepted(request)
    assert parameters(item) == {key: value for key, value in request.items() if key != "vault_id"}


def test_native_form_keeps_user_values_and_adds_the_missing_defaults() -> None:
    # Given the documentation's body, with incremental switched off
    event = {
        "checkpoint": {
            "vault_id": VAULT,
            "parameters": {"incremental": False, "name": "backup_name", "resources": [SERVER]},
        }
    }
    original = copy.deepcopy(event)

    # When parsed
    item = accepted(event)

    # Then the user's values stay, auto_trigger is added, and the payload itself is untouched
    assert parameters(item) == {
        "auto_trigger": False,
        "incremental": False,
        "name": "backup_name",
        "resources": [SERVER],
    }
    assert event == original


def test_native_form_without_parameters_still_gets_name_and_defaults() -> None:
    item = accepted({"checkpoint": {"vault_id": VAULT}})
    assert set(parameters(item)) == {"auto_trigger", "incremental", "name"}


def test_null_parameters_are_treated_as_absent() -> None:
    item = accepted({"vault_id": VAULT, "name": None, "incremental": None, "auto_trigger": None})
    assert parameters(item)["incremental"] is True
    assert parameters(item)["auto_trigger"] is False
    assert parameters(item)["name"].startswith("cbr-")


def test_derived_names_are_deterministic_per_key_and_valid() -> None:
    first = accepted({"vault_id": VAULT, "idempotency_key": "k-1"})
    again = accepted({"vault_id": VAULT, "idempotency_key": "k-1"}, request_id="req-2")
    other = accepted({"vault_id": VAULT, "idempotency_key": "k-2"})
    assert parameters(first)["name"] == parameters(again)["name"]
    assert parameters(first)["name"] != parameters(other)["name"]
    assert CBR_NAME_RULE.fullmatch(parameters(first)["name"])
    assert len(parameters(first)["name"]) == len("cbr-") + 20


def test_project_id_in_the_request_overrides_the_default() -> None:
    assert accepted({"vault_id": VAULT, "project_id": OTHER_PROJECT}).project_id == OTHER_PROJECT


def test_missing_project_id_everywhere_is_rejected_with_a_hint() -> None:
    item = rejected({"vault_id": VAULT}, defaults=NO_DEFAULTS)
    assert fields(item) == ["project_id"]
    assert "HUAWEICLOUD_SDK_PROJECT_ID" in item.errors[0].message
    assert item.vault_id == VAULT


@pytest.mark.parametrize("project_id", ["../v3/other", "a b", "", 42, "p" * 65])
def test_project_id_that_could_bend_the_url_is_rejected(project_id: object) -> None:
    assert fields(rejected({"vault_id": VAULT, "project_id": project_id})) == ["project_id"]


@pytest.mark.parametrize(
    ("request_dry_run", "default_dry_run", "expected"),
    [
        (None, False, False),
        (None, True, True),
        (True, False, True),
        (False, True, True),
        (False, False, False),
    ],
)
def test_a_request_can_ask_for_a_dry_run_but_never_lower_the_configured_one(
    request_dry_run: bool | None, default_dry_run: bool, expected: bool
) -> None:
    event: dict[str, Any] = {"vault_id": VAULT} | (
        {"dry_run": request_dry_run} if request_dry_run is not None else {}
    )
    defaults = RequestDefaults(project_id=PROJECT, default_vault_id=None, dry_run=default_dry_run)
    assert accepted(event, defaults=defaults).dry_run is expected


@pytest.mark.parametrize("value", ["true", 1, "yes"])
def test_dry_run_must_be_a_real_boolean(value: object) -> None:
    assert fields(rejected({"vault_id": VAULT, "dry_run": value})) == ["dry_run"]


# --- unknown fields and error paths -------------------------------------------------------------------


def test_a_typo_is_rejected_by_name_and_never_dropped() -> None:
    item = rejected(load("invalid-unknown-field.json"))
    assert fields(item) == ["incremntal"]
    assert "did you mean 'incremental'" in item.errors[0].message


@pytest.mark.parametrize(
    ("event", "path"),
    [
        (
            {"checkpoint": {"vault_id": VAULT, "parameters": {"incremntal": False}}},
            "checkpoint.parameters.incremntal",
        ),
        ({"checkpoint": {"vault_id": VAULT, "vault": "x"}}, "checkpoint.vault"),
        ({"checkpoint": {"vault_id": VAULT}, "name": "x"}, "name"),
        ({"vault_id": VAULT, "parameters": {}}, "parameters"),
        ({"vault_id": VAULT, "resource_details": [{"id": SERVER, "type": "OS::Nova::Server", "az": "1"}]},
         "resource_details[0].az"),
    ],
)  # fmt: skip
def test_unknown_fields_are_named_by_their_path(event: dict[str, Any], path: str) -> None:
    assert fields(rejected(event)) == [path]


@pytest.mark.parametrize(
    ("event", "path"),
    [
        ({"vault_id": VAULT, "resource_details": [{"id": SERVER, "type": "OS::Nova::Instance"}]},
         "resource_details[0].type"),
        ({"vault_id": VAULT, "resources": [SERVER, "nope"]}, "resources[1]"),
        ({"checkpoint": {"vault_id": VAULT, "parameters": {"name": "a b"}}}, "checkpoint.parameters.name"),
        ({"checkpoint": {"vault_id": "nope"}}, "checkpoint.vault_id"),
        ({"checkpoint": []}, "checkpoint"),
        ({"checkpoint": {"vault_id": VAULT, "parameters": "x"}}, "checkpoint.parameters"),
        ({"vault_id": "nope"}, "vault_id"),
        ({"vault_id": VAULT, "incremental": "true"}, "incremental"),
        ({"vault_id": VAULT, "description": "<b>"}, "description"),
        ({"vault_id": VAULT, "retention_duration_days": 36501}, "retention_duration_days"),
        ({"vault_id": VAULT, "auto_trigger": True, "retention_duration_days": 7}, "retention_duration_days"),
    ],
)  # fmt: skip
def test_broken_rules_are_named_relative_to_the_payload_written(event: dict[str, Any], path: str) -> None:
    assert fields(rejected(event)) == [path]


def test_missing_vault_id_is_reported_as_required() -> None:
    item = rejected({"name": "nightly"})
    assert [(error.field, error.message) for error in item.errors] == [("vault_id", "is required")]


def test_rejected_carries_payload_key_trigger_project_and_vault() -> None:
    event = {"vault_id": VAULT, "project_id": OTHER_PROJECT, "idempotency_key": "k-9", "name": "a b"}
    item = rejected(event)
    assert item.payload == event
    assert (item.idempotency_key, item.project_id, item.vault_id) == ("u:k-9", OTHER_PROJECT, VAULT)
    assert (item.trigger.kind, item.trigger.id) == ("direct", "u:k-9")


def test_rejected_leaves_out_a_vault_id_that_is_not_a_uuid() -> None:
    assert rejected({"vault_id": "nope"}).vault_id is None


def test_error_messages_and_paths_never_echo_huge_inputs() -> None:
    # Given a payload with a huge value and a huge unknown field name
    event = {"vault_id": "v" * 50_000, "name": "n" * 50_000, "y" * 50_000: 1}

    # When rejected
    item = rejected(event)

    # Then every field path and message stays short
    assert len(item.errors) == 3
    assert all(len(error.field) < 100 and len(error.message) < 300 for error in item.errors)


def test_the_list_of_errors_is_capped() -> None:
    event: dict[str, Any] = {"vault_id": VAULT} | {f"unknown_{index}": index for index in range(50)}
    item = rejected(event)
    assert len(item.errors) == MAX_ERRORS + 1
    assert item.errors[-1].message == f"and {50 - MAX_ERRORS} more errors"


# --- keys and trigger identity ------------------------------------------------------------------------


def scheduled(request: dict[str, Any], time: object = "2024-05-01T02:00:00Z") -> dict[str, Any]:
    return {"schedule_arn": SCHEDULE_ARN, "scheduled_time": time} | request


def test_a_schedule_firing_is_keyed_by_arn_time_and_request() -> None:
    # Given a Scheduler input with the schedule's arn and time
    item = accepted(scheduled({"vault_id": VAULT}))

    # Then the key is derived from the firing, and the trigger is the schedule at its scheduled time
    assert is_derived(item.idempotency_key)
    assert (item.trigger.kind, item.trigger.id) == ("schedule", item.idempotency_key)
    assert item.trigger.time == datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


def test_redelivery_of_the_same_firing_gets_the_same_key() -> None:
    first = accepted(scheduled({"vault_id": VAULT}), request_id="req-1")
    retry = accepted(scheduled({"vault_id": VAULT}), request_id="req-2")
    assert first.idempotency_key == retry.idempotency_key
    assert parameters(first)["name"] == parameters(retry)["name"]


def test_another_time_or_another_request_gets_another_key() -> None:
    base = accepted(scheduled({"vault_id": VAULT})).idempotency_key
    later = accepted(scheduled({"vault_id": VAULT}, time="2024-05-02T02:00:00Z")).idempotency_key
    other_vault = accepted(scheduled({"vault_id": OTHER_VAULT})).idempotency_key
    other_resources = accepted(scheduled({"vault_id": VAULT, "resources": [SERVER]})).idempotency_key
    other_schedule = accepted(
        scheduled({"vault_id": VAULT, "schedule_arn": f"{SCHEDULE_ARN}-2"})
    ).idempotency_key
    assert len({base, later, other_vault, other_resources, other_schedule}) == 5


def test_an_explicit_idempotency_key_always_wins() -> None:
    item = accepted(scheduled({"vault_id": VAULT, "idempotency_key": "nightly-2024-05-01"}))
    assert item.idempotency_key == "u:nightly-2024-05-01"
    assert (item.trigger.kind, item.trigger.id) == ("schedule", "u:nightly-2024-05-01")


def test_without_key_or_schedule_time_the_key_is_derived_from_the_lambda_request_id() -> None:
    event = {"vault_id": VAULT, "schedule_arn": SCHEDULE_ARN}
    item = accepted(event, request_id="c0ffee")
    retried = accepted(event, request_id="c0ffee")
    another = accepted(event, request_id="beef")
    assert is_derived(item.idempotency_key)
    assert item.idempotency_key == retried.idempotency_key != another.idempotency_key
    assert (item.trigger.kind, item.trigger.id, item.trigger.time) == ("schedule", "c0ffee", NOW)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2024-05-01T02:00:00Z", datetime(2024, 5, 1, 2, 0, tzinfo=UTC)),
        ("2024-05-01T02:00:00", datetime(2024, 5, 1, 2, 0, tzinfo=UTC)),
        ("2024-05-01T04:00:00+02:00", datetime(2024, 5, 1, 4, 0, tzinfo=timezone(timedelta(hours=2)))),
    ],
)
def test_scheduled_time_is_iso_8601_and_utc_when_no_offset(written: str, expected: datetime) -> None:
    time = accepted({"vault_id": VAULT, "scheduled_time": written}).trigger.time
    assert time == expected
    assert time is not None
    assert time.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", 1714528800, ""])
def test_a_bad_scheduled_time_is_rejected(value: object) -> None:
    item = rejected(scheduled({"vault_id": VAULT}, time=value))
    assert fields(item) == ["scheduled_time"]
    assert is_derived(item.idempotency_key)
    assert item.trigger.id == "req-1"


@pytest.mark.parametrize(
    "value", [42, "", "k" * 257, "tab\there", "with space", "nightly#watch", "ключ", "k\x00", "k\udc00"]
)
def test_a_bad_idempotency_key_is_rejected_under_a_derived_key(value: object) -> None:
    item = rejected({"vault_id": VAULT, "idempotency_key": value})
    assert fields(item) == ["idempotency_key"]
    assert is_derived(item.idempotency_key)
    assert item.trigger.id == "req-1"


# --- many -------------------------------------------------------------------------------------------------


def test_many_requests_fan_out_with_indexed_keys_and_inherited_envelope() -> None:
    # Given one payload for two vaults with a shared envelope
    event = {
        "idempotency_key": "batch-7",
        "project_id": OTHER_PROJECT,
        "dry_run": True,
        "requests": [
            {"vault_id": VAULT},
            {"vault_id": OTHER_VAULT, "project_id": PROJECT, "dry_run": False},
        ],
    }

    # When parsed
    first, second = invoke(event)

    # Then each item is its own request, inheriting what it does not override
    assert isinstance(first, BackupRequest)
    assert isinstance(second, BackupRequest)
    assert (first.vault_id, first.project_id, first.dry_run) == (VAULT, OTHER_PROJECT, True)
    assert (second.vault_id, second.project_id, second.dry_run) == (OTHER_VAULT, PROJECT, False)
    assert is_derived(first.idempotency_key)
    assert is_derived(second.idempotency_key)
    assert first.idempotency_key != second.idempotency_key
    assert first.trigger == second.trigger
    assert (first.trigger.kind, first.trigger.id) == ("direct", "u:batch-7")
    assert parameters(first)["name"] != parameters(second)["name"]


def test_an_item_with_its_own_idempotency_key_keeps_it() -> None:
    event = {"requests": [{"vault_id": VAULT, "idempotency_key": "mine"}, {"vault_id": VAULT}]}
    keys = [item.idempotency_key for item in invoke(event)]
    assert keys[0] == "u:mine"
    assert is_derived(keys[1])


def test_a_bad_item_does_not_spoil_the_others() -> None:
    items = invoke(
        {"requests": [{"vault_id": VAULT}, "junk", {"vault_id": "nope"}, {"vault_id": OTHER_VAULT}]}
    )
    assert [type(item).__name__ for item in items] == [
        "BackupRequest",
        "Rejected",
        "Rejected",
        "BackupRequest",
    ]
    assert isinstance(items[1], Rejected)
    assert isinstance(items[2], Rejected)
    assert (fields(items[1]), fields(items[2])) == (["requests[1]"], ["requests[2].vault_id"])
    assert len({item.idempotency_key for item in items}) == 4
    assert all(is_derived(item.idempotency_key) for item in items)


@pytest.mark.parametrize("requests", [[], [{"vault_id": VAULT}] * 101, "all", {"vault_id": VAULT}, None])
def test_requests_must_hold_1_to_100_requests(requests: object) -> None:
    item = rejected({"requests": requests})
    assert fields(item) == ["requests"]
    assert item.trigger.id == "req-1"


def test_100_requests_are_accepted() -> None:
    items = invoke({"requests": [{"vault_id": VAULT}] * 100})
    assert len(items) == 100
    assert all(isinstance(item, BackupRequest) for item in items)
    assert len({item.idempotency_key for item in items}) == 100


def test_request_fields_beside_requests_are_rejected() -> None:
    item = rejected({"vault_id": VAULT, "requests": [{"vault_id": VAULT}]})
    assert fields(item) == ["vault_id"]


def test_requests_nest_only_one_level() -> None:
    item = only(invoke({"requests": [{"vault_id": VAULT, "requests": [{"vault_id": VAULT}]}]}))
    assert isinstance(item, Rejected)
    assert fields(item) == ["requests[0].requests"]


def test_fanout_of_a_schedule_is_keyed_by_the_firing_and_index() -> None:
    event = load("fanout.json")
    first = invoke(event, request_id="req-1")
    retry = invoke(event, request_id="req-2")
    keys = [item.idempotency_key for item in first]
    assert keys == [item.idempotency_key for item in retry]
    assert len(set(keys)) == 2
    later = invoke(event | {"scheduled_time": "2024-05-02T03:00:00Z"})
    assert not set(keys) & {item.idempotency_key for item in later}


# --- name templates -----------------------------------------------------------------------------------


def test_name_template_renders_with_the_scheduled_time() -> None:
    item = accepted(
        scheduled({"vault_id": VAULT, "name": "nightly-{time:%Y%m%d-%H%M}"}, time="2024-05-01T02:30:00Z")
    )
    assert parameters(item)["name"] == "nightly-20240501-0230"


def test_name_template_renders_with_now_when_no_time_is_given() -> None:
    item = accepted({"vault_id": VAULT, "name": "{time:%Y}_{time:%m%d}-备份"})
    assert parameters(item)["name"] == "2024_0501-备份"


@pytest.mark.parametrize(
    "name",
    [
        "x-{time.__class__}",
        "x-{0}",
        "x-{}",
        "x-{time}",
        "x-{foo}",
        "x-{time:}",
        "{time:%Y}{time.__init__.__globals__}",
        "x-{time!r}",
        "x-{time:%Y:{0}}",
    ],
)
def test_only_time_placeholders_with_a_format_are_rendered(name: str) -> None:
    item = rejected({"vault_id": VAULT, "name": name})
    assert fields(item) == ["name"]
    assert "only {time:FORMAT} is supported" in item.errors[0].message


def test_a_name_template_that_renders_too_long_is_rejected() -> None:
    item = rejected({"vault_id": VAULT, "name": "n" * 57 + "-{time:%Y%m%d}"})
    assert fields(item) == ["name"]
    assert "renders to" in item.errors[0].message


def test_a_name_template_that_renders_bad_characters_is_rejected() -> None:
    assert fields(rejected({"vault_id": VAULT, "name": "at {time:%H:%M}"})) == ["name"]


def test_a_name_that_renders_to_exactly_64_characters_is_accepted() -> None:
    item = accepted({"vault_id": VAULT, "name": "n" * 56 + "{time:%Y%m%d}"})
    assert parameters(item)["name"] == "n" * 56 + "20240501"


def test_a_very_long_template_is_rejected_before_rendering() -> None:
    assert fields(rejected({"vault_id": VAULT, "name": "{time:%Y}" * 100})) == ["name"]


def test_name_template_errors_use_the_form_s_path() -> None:
    native = rejected({"checkpoint": {"vault_id": VAULT, "parameters": {"name": "{0}"}}})
    assert fields(native) == ["checkpoint.parameters.name"]
    many = rejected({"requests": [{"vault_id": VAULT, "name": "{0}"}]})
    assert fields(many) == ["requests[0].name"]


def test_only_the_name_is_templated() -> None:
    item = accepted({"vault_id": VAULT, "description": "made at {time:%Y}"})
    assert parameters(item)["description"] == "made at {time:%Y}"


def test_invalid_name_template_sample_is_rejected() -> None:
    assert fields(rejected(load("invalid-name-template.json"))) == ["name"]


# --- scheduled rule and EventBridge events ------------------------------------------------------------


def test_scheduled_rule_with_empty_detail_uses_the_default_vault() -> None:
    event = load("scheduled-rule.json")
    item = accepted(event)
    assert item.vault_id == VAULT
    assert is_derived(item.idempotency_key)
    assert (item.trigger.kind, item.trigger.id) == ("rule", event["id"])
    assert item.trigger.time == datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


def test_scheduled_rule_without_a_default_vault_is_rejected_with_a_hint() -> None:
    item = rejected(
        load("scheduled-rule.json"), defaults=RequestDefaults(project_id=PROJECT, default_vault_id=None)
    )
    assert fields(item) == ["detail.vault_id"]
    assert "DEFAULT_VAULT_ID" in item.errors[0].message
    assert item.trigger.kind == "rule"


def test_scheduled_rule_with_a_detail_uses_it() -> None:
    event = load("scheduled-rule.json") | {"detail": {"vault_id": OTHER_VAULT, "name": "rule-{time:%H%M}"}}
    item = accepted(event)
    assert (item.vault_id, item.name) == (OTHER_VAULT, "rule-0200")


def test_eventbridge_event_carries_the_request_in_its_detail() -> None:
    event = load("eventbridge.json")
    item = accepted(event, defaults=NO_DEFAULTS)
    assert (item.trigger.kind, item.trigger.id) == ("eventbridge", event["id"])
    assert is_derived(item.idempotency_key)
    assert (item.vault_id, item.project_id, item.name) == (OTHER_VAULT, PROJECT, "pre-release-20240501")
    assert parameters(item)["incremental"] is False


def test_eventbridge_errors_are_named_inside_detail() -> None:
    event = load("eventbridge.json") | {"detail": {"vault_id": VAULT, "incremntal": True}}
    item = rejected(event)
    assert fields(item) == ["detail.incremntal"]
    assert item.payload == event


@pytest.mark.parametrize("detail", ["x", [], None, 3])
def test_eventbridge_detail_must_be_an_object(detail: object) -> None:
    assert fields(rejected(load("eventbridge.json") | {"detail": detail})) == ["detail"]


def test_idempotency_key_in_an_event_detail_wins_but_the_trigger_stays_the_event() -> None:
    event = load("eventbridge.json")
    event["detail"]["idempotency_key"] = "release-42"
    item = accepted(event)
    assert (item.idempotency_key, item.trigger.id) == ("u:release-42", event["id"])


# --- SQS ----------------------------------------------------------------------------------------------------


def test_sqs_batch_sample_yields_one_request_per_record() -> None:
    # Given the sample batch: a plain body, an SNS notification and an EventBridge event
    records = load("sqs-batch.json")["Records"]

    # When each record is parsed
    items = backup_requests([only(parse_sqs_record(record, defaults=DEFAULTS)) for record in records])

    # Then each is a request identified by its message id, at its sent time
    assert [item.trigger.id for item in items] == [record["messageId"] for record in records]
    assert len({item.idempotency_key for item in items}) == 3
    assert [item.trigger.kind for item in items] == ["sqs"] * 3
    assert [item.vault_id for item in items] == [VAULT, OTHER_VAULT, VAULT]
    assert items[0].trigger.time == datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
    assert items[0].name == "queued-20240501020000"


def test_sqs_body_not_json_is_rejected_as_body() -> None:
    item = only(parse_sqs_record(sqs_record("vault_id=abc"), defaults=DEFAULTS))
    assert isinstance(item, Rejected)
    assert fields(item) == ["body"]
    assert (item.trigger.id, item.trigger.kind, item.payload) == ("msg-1", "sqs", "vault_id=abc")


@pytest.mark.parametrize("body", ["[1]", '"text"', "null", "3"])
def test_sqs_body_must_be_an_object(body: str) -> None:
    item = only(parse_sqs_record(sqs_record(body), defaults=DEFAULTS))
    assert isinstance(item, Rejected)
    assert fields(item) == ["body"]


def test_sqs_body_nested_too_deeply_is_rejected() -> None:
    item = only(parse_sqs_record(sqs_record("[" * 100_000 + "]" * 100_000), defaults=DEFAULTS))
    assert isinstance(item, Rejected)
    assert [(error.field, error.message) for error in item.errors] == [
        ("body", "is nested more than 32 levels deep")
    ]


def test_sqs_record_without_a_string_body_is_rejected() -> None:
    record = sqs_record("{}") | {"body": None}
    item = only(parse_sqs_record(record, defaults=DEFAULTS))
    assert isinstance(item, Rejected)
    assert fields(item) == ["body"]


def test_sns_wrapped_errors_are_named_inside_the_message() -> None:
    body = json.dumps(
        {"Type": "Notification", "TopicArn": "arn:aws:sns:x", "Message": json.dumps({"vault_id": 1})}
    )
    item = only(parse_sqs_record(sqs_record(body), defaults=DEFAULTS))
    assert isinstance(item, Rejected)
    assert fields(item) == ["Message.vault_id"]


@pytest.mark.parametrize("message", ["not json", 7])
def test_sns_message_that_is_not_a_json_string_is_rejected(message: object) -> None:
    body = json.dumps({"Type": "Notification", "Message": message})
    item = only(parse_sqs_record(sqs_record(body), defaults=DEFAULTS))
    assert isinstance(item, Rejected)
    assert fields(item) == ["Message"]


def test_eventbridge_wrapped_errors_are_named_inside_detail() -> None:
    body = json.dumps({"detail-type": "CBR Backup Requested", "source": "x", "detail": {"vault_id": "nope"}})
    item = only(parse_sqs_record(sqs_record(body, message_id="m-7"), defaults=DEFAULTS))
    assert isinstance(item, Rejected)
    assert (fields(item), item.trigger.id) == (["detail.vault_id"], "m-7")


def test_sqs_without_sent_timestamp_uses_the_current_time() -> None:
    before = datetime.now(UTC)
    item = only(parse_sqs_record(sqs_record(json.dumps({"vault_id": VAULT}), sent=None), defaults=DEFAULTS))
    after = datetime.now(UTC)
    assert item.trigger.time is not None
    assert before <= item.trigger.time <= after


def test_sqs_message_from_a_schedule_is_keyed_by_the_firing() -> None:
    # Given the same schedule firing delivered twice to the queue (two message ids)
    body = json.dumps(scheduled({"vault_id": VAULT}))
    first = only(parse_sqs_record(sqs_record(body, message_id="m-1"), defaults=DEFAULTS))
    second = only(parse_sqs_record(sqs_record(body, message_id="m-2"), defaults=DEFAULTS))

    # Then both get the firing's key, so only one checkpoint is made, while each trigger is its message
    assert first.idempotency_key == second.idempotency_key
    assert first.idempotency_key == accepted(scheduled({"vault_id": VAULT})).idempotency_key
    assert (first.trigger.id, second.trigger.id) == ("m-1", "m-2")


def test_invalid_sqs_batch_sample_rejects_both_records() -> None:
    records = load("invalid-sqs-batch.json")["Records"]
    items = rejections([only(parse_sqs_record(record, defaults=DEFAULTS)) for record in records])
    assert [fields(item) for item in items] == [["body"], ["vault_id"]]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (load("sqs-batch.json"), True),
        (load("invalid-sqs-batch.json"), True),
        (load("schedule.json"), False),
        ({"Records": []}, False),
        ({"Records": [{"eventSource": "aws:s3"}]}, False),
        ({"Records": [{"eventSource": "aws:sqs"}, "junk"]}, False),
        ({"Records": "aws:sqs"}, False),
        ([{"eventSource": "aws:sqs"}], False),
        ("Records", False),
        (None, False),
    ],
)
def test_is_sqs_batch(event: Any, expected: bool) -> None:
    assert is_sqs_batch(event) is expected


# --- sample events ------------------------------------------------------------------------------------


def test_schedule_sample() -> None:
    item = accepted(load("schedule.json"))
    assert item.trigger.kind == "schedule"
    assert (item.name, item.project_id) == ("nightly-20240501-0200", PROJECT)
    assert parameters(item)["resources"] == [SERVER]


def test_direct_native_sample() -> None:
    item = accepted(load("direct-native.json"), defaults=NO_DEFAULTS)
    assert (item.trigger.kind, item.idempotency_key) == ("direct", "u:manual-ecs-1-2024-05-01")
    assert item.body == {"checkpoint": load("direct-native.json")["checkpoint"]}


def test_fanout_sample() -> None:
    items = backup_requests(invoke(load("fanout.json")))
    assert [item.vault_id for item in items] == [VAULT, OTHER_VAULT]
    assert [item.name for item in items] == ["ecs-20240501", "volumes-20240501"]


@pytest.mark.parametrize("name", sorted(path.name for path in EVENTS.glob("*.json")))
def test_every_sample_parses_to_work_items(name: str) -> None:
    event = load(name)
    if is_sqs_batch(event):
        items = [item for record in event["Records"] for item in parse_sqs_record(record, defaults=DEFAULTS)]
    else:
        items = invoke(event)
    expected = Rejected if name.startswith("invalid-") else BackupRequest | Selection
    assert items
    assert all(isinstance(item, expected) for item in items)


# --- junk never raises ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        [{"vault_id": VAULT}],
        "vault_id",
        0,
        1.5,
        True,
        {},
        {"checkpoint": None},
        {"checkpoint": {"parameters": []}},
        {"checkpoint": {"vault_id": VAULT, "parameters": {"resource_details": "x"}}},
        {"vault_id": {"nested": [1, 2]}},
        {"vault_id": VAULT, "name": ["x"]},
        {"vault_id": VAULT, "name": 5},
        {"vault_id": VAULT, "resources": [[["deep"]]]},
        {"vault_id": VAULT, "resource_details": [None, 1, "x"]},
        {"detail-type": "x", "detail": [1]},
        {"source": "aws.events", "detail-type": "Scheduled Event", "detail": "x"},
        {"Records": [{"eventSource": "aws:sqs"}]},
        {"requests": [None, [], {}]},
    ],
)
def test_junk_is_rejected_never_raised(event: Any) -> None:
    items = invoke(event)
    assert items
    assert all(isinstance(item, Rejected) for item in items)
    assert all(item.errors for item in items if isinstance(item, Rejected))


KEYS = st.sampled_from(
    [
        "vault_id",
        "checkpoint",
        "parameters",
        "name",
        "incremental",
        "auto_trigger",
        "resources",
        "resource_details",
        "requests",
        "project_id",
        "idempotency_key",
        "schedule_arn",
        "scheduled_time",
        "dry_run",
        "detail",
        "detail-type",
        "source",
        "id",
        "time",
        "Type",
        "Message",
        "type",
    ]
) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [VAULT, SERVER, "OS::Nova::Server", "aws.events", "Scheduled Event", "{time:%Y}", "{0}"]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(event=JSON)
def test_random_invocation_payloads_never_raise(event: Any) -> None:
    items = invoke(event)
    assert all(isinstance(item, BackupRequest | Rejected) for item in items)


@settings(max_examples=300, deadline=None)
@given(
    body=JSON.map(json.dumps) | st.text(max_size=40),
    message_id=st.none() | st.text(max_size=10),
    sent=st.none() | st.text(max_size=14) | st.integers().map(str),
)
def test_random_sqs_records_never_raise(body: str, message_id: str | None, sent: str | None) -> None:
    record = sqs_record(body, sent=sent) | {"messageId": message_id}
    items = parse_sqs_record(record, defaults=DEFAULTS)
    assert items
    assert all(isinstance(item, BackupRequest | Rejected) for item in items)
