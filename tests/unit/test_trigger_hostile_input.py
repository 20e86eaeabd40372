"""Hostile input: whatever a sender writes ends as one Rejected naming the field, never as a crash later.

Each case here was accepted, or raised, or cost unbounded work before the limits were checked first:
lone surrogates and NUL (UnicodeEncodeError in the publisher or the AWS client, which poisoned the
whole SQS batch), bodies and nestings of any size, NaN (an event Detail that is not JSON), lists longer
than the API takes, fuzzy matching of any number of unknown fields, keys that could name another
request's records or outgrow DynamoDB's key limit, a request switching a configured dry run off, and
requests for projects and regions the function was not given.
"""

from __future__ import annotations

import difflib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cbr_checkpointer.domain import BackupRequest, Outcome, Rejected
from cbr_checkpointer.publisher import event_detail
from cbr_checkpointer.triggers import (
    MAX_ERRORS,
    RequestDefaults,
    RequestItem,
    parse_invocation,
    parse_sqs_record,
)
from cbr_checkpointer.triggers.limits import MAX_DEPTH, MAX_DOCUMENT_BYTES
from cbr_checkpointer.values import replace
from devtools.records import sqs_record

PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
OTHER_PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
OTHER_VAULT = "7d2c9a10-5e3b-4f6a-8c1d-2e4f6a8b0c12"
SERVER = "94eba8b2-acc9-4d82-badc-127144cc5526"
SCHEDULE_ARN = "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/nightly"
NOW = datetime(2024, 5, 1, 2, 0, 7, tzinfo=UTC)
DEFAULTS = RequestDefaults(project_id=PROJECT, default_vault_id=VAULT)


def invoke(event: Any, *, defaults: RequestDefaults = DEFAULTS) -> list[RequestItem]:
    return parse_invocation(event, request_id="req-1", now=NOW, defaults=defaults)


def queued(body: str, *, defaults: RequestDefaults = DEFAULTS) -> list[RequestItem]:
    return parse_sqs_record(sqs_record(body, message_id="m-1"), defaults=defaults)


def rejected(items: list[RequestItem]) -> Rejected:
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, Rejected), item
    return item


def accepted(items: list[RequestItem]) -> BackupRequest:
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, BackupRequest), item
    return item


def fields(item: Rejected) -> list[str]:
    return [error.field for error in item.errors]


def with_raw(field: str, raw: str) -> str:
    """The JSON text of a request for VAULT with `field` written as `raw` JSON text."""
    return json.dumps({"vault_id": VAULT})[:-1] + f', "{field}": {raw}}}'


def published_detail(item: Rejected) -> dict[str, Any]:
    """The Rejected event's Detail exactly as PutEvents would carry it, read back by a strict reader."""
    detail = event_detail(Outcome("rejected", item, error=item.error_info()))
    text = json.dumps(detail, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")  # a lone surrogate would raise here

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in the Detail")

    read: dict[str, Any] = json.loads(text, parse_constant=refuse)
    return read


# -- 1. every string is valid Unicode before anything reads it --------------------------------------------


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"vault_id": VAULT, "name": "\udc00"}, "name"),
        ({"vault_id": VAULT, "schedule_arn": "arn\ud800", "scheduled_time": "2024-05-01T02:00:00Z"},
         "schedule_arn"),
        ({"vault_id": VAULT, "description": "nul\x00here"}, "description"),
        ({"vault_id": VAULT, "idempotency_key": "k\ud800"}, "idempotency_key"),
        ({"checkpoint": {"vault_id": VAULT, "parameters": {"name": "x\udfff"}}},
         "checkpoint.parameters.name"),
        ({"requests": [{"vault_id": VAULT}, {"vault_id": VAULT, "name": "\ud83d"}]}, "requests[1].name"),
        ({"vault_id": VAULT, "resource_details": [{"id": SERVER, "type": "OS::Sfs::Turbo", "name": "\0"}]},
         "resource_details[0].name"),
        ({"detail-type": "Backup", "source": "ops", "detail": {"vault_id": VAULT, "name": "\udc00"}},
         "detail.name"),
        ({"vault_id": VAULT, "select": {"tags": {"env\udc00": "prod"}}}, "select.tags.'env\\udc00'"),
    ],
)  # fmt: skip
def test_a_lone_surrogate_or_nul_anywhere_is_rejected_naming_the_field(event: Any, field: str) -> None:
    item = rejected(invoke(event))

    assert fields(item) == [field]
    assert "lone surrogate" in item.message or "NUL" in item.message
    published_detail(item)


def test_a_field_name_with_a_surrogate_is_named_escaped() -> None:
    item = rejected(invoke({"vault_id": VAULT, "\udc00x": 1}))
    assert fields(item) == ["'\\udc00x'"]
    assert "field name" in item.message
    assert published_detail(item)["payload"] == {"vault_id": VAULT, "\ufffdx": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (with_raw("name", '"\\udc00"'), "name"),
        (with_raw("schedule_arn", '"arn\\ud800"'), "schedule_arn"),
        (with_raw("description", '"\\u0000"'), "description"),
        (json.dumps({"Type": "Notification", "Message": with_raw("name", '"\\udc00"')}), "Message.name"),
        (json.dumps({"detail-type": "x", "detail": {"vault_id": VAULT}}).replace('"x"', '"\\ud800"'),
         "detail-type"),
    ],
)  # fmt: skip
def test_escaped_surrogates_in_an_sqs_body_are_rejected_on_their_own(body: str, field: str) -> None:
    # Given a batch of one poison record and one good one
    poison = queued(body)
    good = queued(json.dumps({"vault_id": VAULT}))

    # Then the poison record is Rejected by field, with a quote any publisher can encode,
    # and the good one is untouched
    item = rejected(poison)
    assert fields(item) == [field]
    published_detail(item)
    accepted(good)


# -- 2. sizes, depths, numbers and list lengths are bounded before anything is parsed or walked ----------


def test_an_sqs_body_over_256_kib_is_rejected_before_it_is_parsed() -> None:
    request = json.dumps({"vault_id": VAULT})
    fits = request + " " * (MAX_DOCUMENT_BYTES - len(request))
    too_big = fits + " "

    accepted(queued(fits))
    item = rejected(queued(too_big))
    assert [(error.field, error.message) for error in item.errors] == [
        ("body", "is larger than 262144 bytes")
    ]
    assert len(json.dumps(published_detail(item))) < 40 * 1024


def test_the_body_limit_counts_utf8_bytes_not_characters() -> None:
    request = json.dumps(
        {"vault_id": VAULT, "description": "é" * (MAX_DOCUMENT_BYTES // 2)}, ensure_ascii=False
    )
    assert len(request) < MAX_DOCUMENT_BYTES < len(request.encode("utf-8"))
    assert fields(rejected(queued(request))) == ["body"]


def test_an_invocation_payload_over_256_kib_is_rejected() -> None:
    item = rejected(invoke({"vault_id": VAULT, "name": "x", "description": "d" * MAX_DOCUMENT_BYTES}))
    assert [(error.field, error.message) for error in item.errors] == [
        ("payload", "is larger than 262144 bytes")
    ]


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [MAX_DEPTH, 1_000, 50_000])
def test_a_payload_nested_too_deep_is_rejected_and_never_quoted_in_full(depth: int) -> None:
    # Given a request whose name holds a list nested far deeper than any request needs
    item = rejected(invoke({"vault_id": VAULT, "name": nested(depth)}))

    # Then it is rejected by that field, and the quote in its event is cut at the limit
    assert [(error.field, error.message) for error in item.errors] == [
        ("name", f"is nested more than {MAX_DEPTH} levels deep")
    ]
    quoted = published_detail(item)["payload"]["name"]
    levels = 0
    while isinstance(quoted, list):
        quoted, levels = quoted[0], levels + 1
    assert levels <= MAX_DEPTH
    assert quoted == "…"


def test_nesting_up_to_the_limit_is_fine() -> None:
    # The top-level object is the first of the 32 levels allowed
    item = rejected(invoke({"vault_id": VAULT, "name": nested(MAX_DEPTH - 2)}))
    assert fields(item) == ["name"]
    assert "nested" not in item.message


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
def test_an_sqs_body_nested_too_deep_is_rejected_from_its_text(depth: int) -> None:
    text = with_raw("name", "[" * depth + "]" * depth)
    item = rejected(queued(text))
    assert [(error.field, error.message) for error in item.errors] == [
        ("body", f"is nested more than {MAX_DEPTH} levels deep")
    ]
    published_detail(item)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    item = accepted(queued(json.dumps({"vault_id": VAULT, "description": "[{" * 60 + '\\"' + "}]" * 60})))
    assert item.body["checkpoint"]["parameters"]["description"].startswith("[{[{")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_a_body_are_not_json(constant: str) -> None:
    item = rejected(queued(with_raw("retention_duration_days", constant)))
    assert [(error.field, error.message) for error in item.errors] == [
        ("body", f"is not valid JSON: {constant} is not a JSON number")
    ]
    published_detail(item)


@pytest.mark.parametrize("literal", ["1e999", "-1e400"])
def test_a_number_too_large_for_a_float_is_refused_not_made_infinite(literal: str) -> None:
    item = rejected(queued(with_raw("retention_duration_days", literal)))
    assert [(error.field, error.message) for error in item.errors] == [
        ("body", f"is not valid JSON: {literal} is too large for a number")
    ]
    published_detail(item)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_number_in_an_invocation_is_rejected_and_never_emitted(number: float) -> None:
    item = rejected(invoke({"vault_id": VAULT, "retention_duration_days": number}))
    assert fields(item) == ["retention_duration_days"]
    assert published_detail(item)["payload"]["retention_duration_days"] in {"nan", "inf", "-inf"}


@pytest.mark.parametrize(
    ("field", "item", "limit"),
    [("resources", SERVER, 256), ("resource_details", {"id": SERVER, "type": "OS::Nova::Server"}, 256)],
)
def test_resource_lists_are_bounded_as_the_api_bounds_them(field: str, item: Any, limit: int) -> None:
    accepted(invoke({"vault_id": VAULT, field: [item] * limit}))
    assert fields(rejected(invoke({"vault_id": VAULT, field: [item] * (limit + 1)}))) == [field]


def test_did_you_mean_is_worked_out_for_a_bounded_number_of_unknown_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a body of thousands of misspelled fields, and a count of the fuzzy matches made
    matches: list[str] = []
    real = difflib.get_close_matches

    def counted(word: str, possibilities: Any, n: int = 3) -> list[str]:
        matches.append(word)
        return real(word, possibilities, n=n)

    monkeypatch.setattr(difflib, "get_close_matches", counted)
    event = {"vault_id": VAULT} | {f"incremntal{index}": 1 for index in range(5_000)}

    # When it is parsed
    item = rejected(invoke(event))

    # Then only the errors shown got a suggestion, and the rest were only counted
    assert len(matches) == MAX_ERRORS
    assert len(item.errors) == MAX_ERRORS + 1
    assert item.errors[-1].message == f"and {5_000 - MAX_ERRORS} more errors"


def test_no_suggestion_is_worked_out_for_a_long_unknown_name(monkeypatch: pytest.MonkeyPatch) -> None:
    matches: list[str] = []
    monkeypatch.setattr(difflib, "get_close_matches", lambda word, *_, **__: matches.append(word))
    item = rejected(invoke({"vault_id": VAULT, "incremental" * 10: 1}))
    assert item.errors[0].message == "is not a known field"
    assert matches == []


# -- 3. keys: namespaces that no request can cross, and always short --------------------------------------


def test_a_user_key_cannot_name_a_derived_key_or_an_internal_record() -> None:
    # Given the key a schedule firing derives, and a sender who copies it as an idempotency_key
    firing = accepted(
        invoke({"vault_id": VAULT, "schedule_arn": SCHEDULE_ARN, "scheduled_time": "2024-05-01T02:00:00Z"})
    )
    copied = accepted(invoke({"vault_id": OTHER_VAULT, "idempotency_key": firing.idempotency_key}))
    bare = accepted(
        invoke({"vault_id": OTHER_VAULT, "idempotency_key": firing.idempotency_key.removeprefix("d:")})
    )

    # Then the copies live in the user namespace, never the derived one
    assert firing.idempotency_key.startswith("d:")
    assert copied.idempotency_key == "u:" + firing.idempotency_key
    assert bare.idempotency_key.startswith("u:")
    assert len({firing.idempotency_key, copied.idempotency_key, bare.idempotency_key}) == 3

    # And a key that would end in one of the function's own suffixes cannot be given at all
    for internal in (f"{bare.idempotency_key[2:]}#watch", "k#watch#1", "k#completion"):
        assert fields(rejected(invoke({"vault_id": VAULT, "idempotency_key": internal}))) == [
            "idempotency_key"
        ]


def test_a_sender_cannot_claim_the_next_firing_s_key_with_another_request() -> None:
    # Given the next firing of a schedule, and a queue sender who forges its arn and time
    firing = {"schedule_arn": SCHEDULE_ARN, "scheduled_time": "2024-05-02T02:00:00Z"}
    real = accepted(invoke(firing | {"vault_id": VAULT}))
    forged = accepted(queued(json.dumps(firing | {"vault_id": OTHER_VAULT})))
    forged_resources = accepted(queued(json.dumps(firing | {"vault_id": VAULT, "resources": [SERVER]})))
    replayed = accepted(queued(json.dumps(firing | {"vault_id": VAULT})))

    # Then another request derives another key; only the very same request shares it (one checkpoint)
    assert forged.idempotency_key != real.idempotency_key
    assert forged_resources.idempotency_key != real.idempotency_key
    assert replayed.idempotency_key == real.idempotency_key


def test_a_schedule_arn_of_1024_emoji_gives_a_key_that_fits_dynamodb() -> None:
    arn = "🗓" * 1024
    item = accepted(
        invoke({"vault_id": VAULT, "schedule_arn": arn, "scheduled_time": "2024-05-01T02:00:00Z"})
    )
    assert len(arn.encode("utf-8")) > 2048
    # The ledger's longest record id is the key with an internal suffix
    assert len(f"{item.idempotency_key}#watch#100000".encode()) <= 2048
    assert item.idempotency_key.startswith("d:")


def test_the_longest_user_key_fits_dynamodb_with_any_internal_suffix() -> None:
    item = accepted(invoke({"vault_id": VAULT, "idempotency_key": "~" * 256}))
    assert len(f"{item.idempotency_key}#watch#100000".encode()) <= 2048


def test_derived_keys_are_stable_across_releases() -> None:
    # A redelivery after a deployment must find the record its first delivery claimed: this pins the
    # derivation (SHA-256 of the canonical JSON of what identifies the trigger and of the request).
    item = accepted(
        invoke({"vault_id": VAULT, "schedule_arn": SCHEDULE_ARN, "scheduled_time": "2024-05-01T02:00:00Z"})
    )
    assert item.idempotency_key == "d:2f83309f9c2d45e4e73d48236f2ec1412d357df2ed323f2c3fad57829f86a23b"


# -- 4. DRY_RUN is a floor ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        {"vault_id": VAULT, "dry_run": False},
        {"checkpoint": {"vault_id": VAULT}, "dry_run": False},
        {"dry_run": False, "requests": [{"vault_id": VAULT, "dry_run": False}]},
        {"detail-type": "Backup", "source": "ops", "detail": {"vault_id": VAULT, "dry_run": False}},
    ],
)
def test_a_request_cannot_switch_a_configured_dry_run_off(event: dict[str, Any]) -> None:
    defaults = RequestDefaults(project_id=PROJECT, default_vault_id=None, dry_run=True)
    items = invoke(event, defaults=defaults)
    assert items
    assert all(isinstance(item, BackupRequest) and item.dry_run for item in items)


# -- 5. only allowed projects -------------------------------------------------------------------------------


def test_by_default_only_the_configured_project_is_allowed() -> None:
    item = rejected(invoke({"vault_id": VAULT, "project_id": OTHER_PROJECT}))
    assert fields(item) == ["project_id"]
    assert "ALLOWED_PROJECT_IDS" in item.message
    assert accepted(invoke({"vault_id": VAULT, "project_id": PROJECT})).project_id == PROJECT


def test_allowed_projects_are_the_configured_list() -> None:
    defaults = RequestDefaults(
        project_id=PROJECT, default_vault_id=None, allowed_project_ids=frozenset({OTHER_PROJECT})
    )
    assert (
        accepted(invoke({"vault_id": VAULT, "project_id": OTHER_PROJECT}, defaults=defaults)).project_id
        == OTHER_PROJECT
    )
    # The default project too must be listed once there is a list
    assert fields(rejected(invoke({"vault_id": VAULT}, defaults=defaults))) == ["project_id"]


def test_a_project_outside_the_list_is_rejected_in_every_form() -> None:
    # A many-request naming one is refused as a whole; an item naming one is refused on its own
    whole = rejected(invoke({"project_id": OTHER_PROJECT, "requests": [{"vault_id": VAULT}]}))
    assert fields(whole) == ["project_id"]
    items = invoke({"requests": [{"vault_id": VAULT, "project_id": OTHER_PROJECT}, {"vault_id": VAULT}]})
    assert isinstance(items[0], Rejected)
    assert fields(items[0]) == ["requests[0].project_id"]
    assert isinstance(items[1], BackupRequest)
    selection = rejected(invoke({"project_id": OTHER_PROJECT, "select": {"all": True}}))
    assert fields(selection) == ["project_id"]


# -- 6. region ---------------------------------------------------------------------------------------------


REGIONAL = RequestDefaults(
    project_id=PROJECT, default_vault_id=None, regions=frozenset({"cn-north-4", "ap-southeast-1"})
)


def test_a_known_region_is_carried_on_the_request() -> None:
    assert (
        accepted(invoke({"vault_id": VAULT, "region": "ap-southeast-1"}, defaults=REGIONAL)).region
        == "ap-southeast-1"
    )
    assert accepted(invoke({"vault_id": VAULT}, defaults=REGIONAL)).region is None


@pytest.mark.parametrize("region", ["eu-west-0", "cn-north-4.evil.example", "../x", "", 4, "CN-NORTH-4"])
def test_an_unknown_or_malformed_region_is_rejected(region: object) -> None:
    item = rejected(invoke({"vault_id": VAULT, "region": region}, defaults=REGIONAL))
    assert fields(item) == ["region"]


def test_items_of_a_many_request_inherit_the_region() -> None:
    items = invoke(
        {
            "region": "cn-north-4",
            "requests": [{"vault_id": VAULT}, {"vault_id": VAULT, "region": "ap-southeast-1"}],
        },
        defaults=REGIONAL,
    )
    assert [item.region for item in items if isinstance(item, BackupRequest)] == [
        "cn-north-4",
        "ap-southeast-1",
    ]


def test_without_known_regions_no_request_may_name_one() -> None:
    item = rejected(invoke({"vault_id": VAULT, "region": "cn-north-4"}))
    assert fields(item) == ["region"]


def test_a_request_naming_no_region_goes_to_the_configured_one() -> None:
    configured = replace(REGIONAL, region="cn-north-4")

    assert accepted(invoke({"vault_id": VAULT}, defaults=configured)).region == "cn-north-4"
    assert accepted(invoke({"vault_id": VAULT, "region": "ap-southeast-1"}, defaults=configured)).region == (
        "ap-southeast-1"
    )


def test_the_same_request_in_two_regions_is_two_requests_with_two_keys() -> None:
    near = accepted(invoke({"vault_id": VAULT, "name": "nightly", "region": "cn-north-4"}, defaults=REGIONAL))
    far = accepted(
        invoke({"vault_id": VAULT, "name": "nightly", "region": "ap-southeast-1"}, defaults=REGIONAL)
    )

    assert near.body == far.body
    assert near.idempotency_key != far.idempotency_key
