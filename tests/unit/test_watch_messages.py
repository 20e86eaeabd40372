"""The watch message: written by the function for itself, honoured only on its own watch queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from cbr_checkpointer.domain import Rejected, Trigger, WatchCheck
from cbr_checkpointer.triggers import (
    RequestDefaults,
    parse_sqs_record,
    parse_watch_record,
    watch_message,
    watch_queue_arn,
)
from cbr_checkpointer.values import replace
from devtools.records import ACCOUNT, sqs_record

PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
CHECKPOINT = "8b0851a8-adf3-4f4c-a914-dead08bf9664"
KEY = "u:nightly-key"
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
REQUEST = {"checkpoint": {"vault_id": VAULT, "parameters": {"name": "nightly"}}}
TRIGGER = Trigger("schedule", "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/nightly", T0)
WATCH_QUEUE = "cbr-checkpointer-watch"
WATCH_ARN = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:{WATCH_QUEUE}"
DEFAULTS = RequestDefaults(project_id=PROJECT, default_vault_id=None)


def make_check(attempt: int = 1) -> WatchCheck:
    return WatchCheck(
        idempotency_key=KEY,
        project_id=PROJECT,
        vault_id=VAULT,
        checkpoint_id=CHECKPOINT,
        request=REQUEST,
        trigger=TRIGGER,
        first_seen=T0,
        attempt=attempt,
    )


def watch_record(body: Any, *, message_id: str = "msg-1") -> dict[str, Any]:
    return sqs_record(body, message_id=message_id, queue=WATCH_QUEUE, region="eu-west-1")


def request_record(body: Any, *, message_id: str = "msg-1") -> dict[str, Any]:
    return sqs_record(body, message_id=message_id, queue="cbr-checkpointer-requests", region="eu-west-1")


def test_a_watch_message_reads_back_as_the_check_it_schedules() -> None:
    check = make_check(attempt=4)

    body = watch_message(check)
    parsed = parse_watch_record(watch_record(json.dumps(body)), WATCH_ARN, defaults=DEFAULTS)

    assert set(body) == {"watch"}
    assert body["watch"]["version"] == 1
    assert body["watch"]["attempt"] == 4
    assert body["watch"]["first_seen"] == "2026-11-27T02:00:00+00:00"
    assert parsed == check


def test_a_check_in_a_named_region_carries_it_there_and_back() -> None:
    check = replace(make_check(), region="ap-southeast-1")

    body = watch_message(check)
    parsed = parse_watch_record(watch_record(json.dumps(body)), WATCH_ARN, defaults=DEFAULTS)

    assert body["watch"]["region"] == "ap-southeast-1"
    assert parsed == check


def test_a_message_scheduled_before_checks_named_their_region_still_reads_as_a_check() -> None:
    body = watch_message(make_check())
    assert "region" not in body["watch"]  # a check of no named region writes none, as before

    parsed = parse_watch_record(watch_record(json.dumps(body)), WATCH_ARN, defaults=DEFAULTS)

    assert isinstance(parsed, WatchCheck)
    assert parsed.region is None  # followed in the configured region


def test_bodies_of_other_queues_that_are_not_watch_messages_are_left_to_the_request_parser() -> None:
    assert parse_watch_record(request_record({"vault_id": VAULT}), WATCH_ARN, defaults=DEFAULTS) is None
    assert (
        parse_watch_record(
            request_record('not json at all, but mentions "watch"'), WATCH_ARN, defaults=DEFAULTS
        )
        is None
    )
    assert parse_watch_record({"messageId": "m", "body": None}, WATCH_ARN, defaults=DEFAULTS) is None
    assert parse_watch_record(request_record({"vault_id": VAULT}), None, defaults=DEFAULTS) is None


@pytest.mark.parametrize("watch_arn", [WATCH_ARN, None])
def test_a_watch_message_from_any_other_queue_is_rejected_not_checked(watch_arn: str | None) -> None:
    # Given a perfectly formed check, sent to the request queue (or with no watch queue configured)
    body = watch_message(make_check())

    # When the record is parsed
    item = parse_watch_record(request_record(body, message_id="msg-9"), watch_arn, defaults=DEFAULTS)

    # Then it is Rejected by the watch field, under the record's own trigger
    assert isinstance(item, Rejected)
    assert [error.field for error in item.errors] == ["watch"]
    assert "watch queue" in item.errors[0].message
    assert (item.trigger.kind, item.trigger.id) == ("sqs", "msg-9")
    assert item.payload == body


def test_watch_beside_request_fields_on_another_queue_is_rejected_too() -> None:
    body = {"watch": watch_message(make_check())["watch"], "vault_id": VAULT}
    item = parse_watch_record(request_record(body), WATCH_ARN, defaults=DEFAULTS)
    assert isinstance(item, Rejected)
    assert [error.field for error in item.errors] == ["watch"]


def test_a_watch_with_escaped_letters_still_reaches_no_check() -> None:
    # Given a body that spells "watch" with escapes, so that a plain text search misses it
    body = json.dumps(watch_message(make_check())).replace('"watch"', '"\\u0077atch"')

    # Then the watch parser leaves it alone, and the request parser refuses the field
    assert parse_watch_record(request_record(body), WATCH_ARN, defaults=DEFAULTS) is None
    (item,) = parse_sqs_record(
        request_record(body), defaults=RequestDefaults(project_id=PROJECT, default_vault_id=None)
    )
    assert isinstance(item, Rejected)
    assert "watch" in [error.field for error in item.errors]


@pytest.mark.parametrize(
    "body",
    [
        {"vault_id": VAULT},
        "not json",
        "[1]",
        "{}",
        {"watch": watch_message(make_check())["watch"], "vault_id": VAULT},
    ],
)
def test_anything_on_the_watch_queue_that_is_not_a_watch_message_is_rejected(body: Any) -> None:
    item = parse_watch_record(watch_record(body), WATCH_ARN, defaults=DEFAULTS)
    assert isinstance(item, Rejected)
    assert item.errors


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(lambda w: w.pop("checkpoint_id"), "watch.checkpoint_id", id="missing checkpoint"),
        pytest.param(
            lambda w: w.update(checkpoint_id="../../vaults"), "watch.checkpoint_id", id="not a UUID"
        ),
        pytest.param(lambda w: w.update(project_id="a/b"), "watch.project_id", id="project in a path"),
        pytest.param(lambda w: w.update(version=2), "watch.version", id="unknown version"),
        pytest.param(lambda w: w.update(version=True), "watch.version", id="version bool"),
        pytest.param(lambda w: w.update(attempt=0), "watch.attempt", id="attempt 0"),
        pytest.param(lambda w: w.update(attempt=True), "watch.attempt", id="attempt bool"),
        pytest.param(lambda w: w.update(first_seen="yesterday"), "watch.first_seen", id="bad time"),
        pytest.param(lambda w: w.update(first_seen="2026-11-27T02:00:00"), "watch.first_seen", id="naive"),
        pytest.param(lambda w: w.update(trigger={"kind": "fax", "id": "x"}), "watch.trigger.kind", id="kind"),
        pytest.param(lambda w: w.update(request=[]), "watch.request", id="request not an object"),
        pytest.param(lambda w: w.update(idempotency_key="nightly"), "watch.idempotency_key", id="bare key"),
        pytest.param(
            lambda w: w.update(idempotency_key="u:k#completion"), "watch.idempotency_key", id="internal key"
        ),
        pytest.param(lambda w: w.update(extra=1), "watch.extra", id="unknown field"),
        pytest.param(lambda w: w.update(region="CN-NORTH-4"), "watch.region", id="region not an id"),
        pytest.param(lambda w: w.update(region=4), "watch.region", id="region not text"),
    ],
)
def test_a_broken_watch_message_is_rejected_by_field(
    change: Callable[[dict[str, Any]], Any], field: str
) -> None:
    watch = watch_message(make_check())["watch"]
    change(watch)

    item = parse_watch_record(
        watch_record({"watch": watch}, message_id="msg-7"), WATCH_ARN, defaults=DEFAULTS
    )

    assert isinstance(item, Rejected)
    assert [error.field for error in item.errors] == [field]
    assert item.trigger.kind == "sqs"
    assert item.trigger.id == "msg-7"
    assert item.payload == {"watch": watch}


def test_a_rejected_check_keeps_its_request_key_project_and_vault_when_they_are_sound() -> None:
    watch = watch_message(make_check())["watch"] | {"attempt": 0}
    item = parse_watch_record(watch_record({"watch": watch}), WATCH_ARN, defaults=DEFAULTS)
    assert isinstance(item, Rejected)
    assert (item.idempotency_key, item.project_id, item.vault_id) == (KEY, PROJECT, VAULT)


def test_a_check_of_a_project_outside_the_allowed_ones_is_rejected_not_read() -> None:
    other = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    body = watch_message(replace(make_check(), project_id=other))

    item = parse_watch_record(watch_record(body), WATCH_ARN, defaults=DEFAULTS)
    allowed = RequestDefaults(
        project_id=PROJECT, default_vault_id=None, allowed_project_ids=frozenset({PROJECT, other})
    )
    allowed_item = parse_watch_record(watch_record(body), WATCH_ARN, defaults=allowed)

    assert isinstance(item, Rejected)
    assert [error.field for error in item.errors] == ["watch.project_id"]
    assert "ALLOWED_PROJECT_IDS" in item.message
    assert (item.idempotency_key, item.project_id, item.vault_id) == (KEY, other, VAULT)
    assert isinstance(allowed_item, WatchCheck)
    assert allowed_item.project_id == other


@pytest.mark.parametrize("watch", [{}, [], "x"])
def test_an_empty_or_non_object_watch_is_rejected_with_reasons(watch: Any) -> None:
    item = parse_watch_record(watch_record({"watch": watch}), WATCH_ARN, defaults=DEFAULTS)

    assert isinstance(item, Rejected)
    assert item.errors
    assert item.idempotency_key.startswith("d:")
    assert (item.project_id, item.vault_id) == (None, None)


def test_a_watch_message_with_a_lone_surrogate_is_rejected_and_quoted_safely() -> None:
    body = json.dumps(watch_message(make_check())).replace('"name": "nightly"', '"name": "\\udc00"')
    item = parse_watch_record(watch_record(body), WATCH_ARN, defaults=DEFAULTS)
    assert isinstance(item, Rejected)
    assert [error.field for error in item.errors] == ["watch.request.checkpoint.parameters.name"]
    json.dumps(item.payload, ensure_ascii=False).encode("utf-8")


# -- the watch queue's ARN, as Lambda writes it into eventSourceARN ----------------------------------------


@pytest.mark.parametrize(
    ("url", "arn"),
    [
        (
            "https://sqs.eu-west-1.amazonaws.com/123456789012/cbr-checkpointer-watch",
            "arn:aws:sqs:eu-west-1:123456789012:cbr-checkpointer-watch",
        ),
        (
            "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/watch",
            "arn:aws-cn:sqs:cn-north-1:123456789012:watch",
        ),
        (
            "https://ap-south-1.queue.amazonaws.com/123456789012/w.fifo",
            "arn:aws:sqs:ap-south-1:123456789012:w.fifo",
        ),
        ("http://127.0.0.1:5000/123456789012/watch", "arn:aws:sqs:us-west-2:123456789012:watch"),
        ("http://localhost:4566/000000000000/watch/", "arn:aws:sqs:us-west-2:000000000000:watch"),
    ],
)
def test_the_watch_queue_arn_is_derived_from_its_url(url: str, arn: str) -> None:
    assert watch_queue_arn(url, "us-west-2") == arn


@pytest.mark.parametrize(
    "url",
    ["https://sqs.eu-west-1.amazonaws.com/", "https://sqs.eu-west-1.amazonaws.com/12345/q", "not a url"],
)
def test_a_url_that_names_no_queue_has_no_arn(url: str) -> None:
    assert watch_queue_arn(url, "us-east-1") is None
