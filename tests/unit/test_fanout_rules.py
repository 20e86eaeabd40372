"""A selection becomes one request per vault, without sockets: the application over the real services,
the real trigger parser for the request queue's messages, and the fakes of tests/fakes.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from tests.fakes import FakeCbr, FakeClock, FakeEventSink, FakeRequestQueue, FakeVaults, FlakyLedger

from cbr_checkpointer.application import Application, BatchResult, InvocationResult
from cbr_checkpointer.domain import (
    BackupRequest,
    CbrCallFailed,
    ErrorInfo,
    Expansion,
    Outcome,
    QueueUnavailable,
    Rejected,
    Selection,
)
from cbr_checkpointer.fanout import MIN_SEND_SECONDS, SEND_CHUNK, FanoutService
from cbr_checkpointer.publisher import MAX_EXPANDED_VAULT_IDS, expansion_detail
from cbr_checkpointer.retry import RetryPolicy
from cbr_checkpointer.service import CheckpointService
from cbr_checkpointer.triggers import RequestDefaults, fanout_message, parse_invocation, parse_sqs_record
from devtools.records import sqs_record

NOW = 1_800_000_000.0
PROJECT = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
POLICY = "6f1e2d3c-4b5a-4987-8a6b-5c4d3e2f1a0b"
DEFAULTS = RequestDefaults(project_id=PROJECT, default_vault_id=None, regions=frozenset({"cn-north-4"}))
SCHEDULE = {
    "schedule_arn": "arn:aws:scheduler:eu-west-1:123456789012:schedule/default/fleet",
    "scheduled_time": "2024-05-01T02:00:00Z",
}
THROTTLED = CbrCallFailed(
    ErrorInfo("throttled", "slow down", code="APIGW.0308", http_status=429, retryable=True)
)
REFUSED = CbrCallFailed(ErrorInfo("auth", "no permission", code="BackupService.6301", http_status=403))


def vault(index: int) -> str:
    return f"00000000-0000-4000-8000-{index:012d}"


def selection(select: dict[str, Any], **fields: Any) -> Selection:
    (item,) = parse_invocation(
        SCHEDULE | {"select": select} | fields,
        request_id="req-1",
        now=datetime.fromtimestamp(NOW, UTC),
        defaults=DEFAULTS,
    )
    assert isinstance(item, Selection), item
    return item


class World:
    def __init__(self, *, inline_max: int = 3, queue: bool = True) -> None:
        self.cbr = FakeCbr()
        self.ledger = FlakyLedger()
        self.clock = FakeClock(NOW)
        self.events = FakeEventSink()
        self.vaults = FakeVaults()
        self.queue = FakeRequestQueue()
        retry = RetryPolicy(max_attempts=3, safety_margin=5.0)
        self.fanout = FanoutService(
            self.vaults, self.queue if queue else None, inline_max=inline_max, retry=retry, clock=self.clock
        )
        service = CheckpointService(self.cbr, self.ledger, retry=retry, clock=self.clock)
        self.application = Application(service, self.events, None, fanout=self.fanout, max_workers=4)

    def fleet(self, count: int, **tags: str) -> list[str]:
        ids = [vault(len(self.vaults.tags) + index) for index in range(count)]
        for vault_id in ids:
            self.vaults.add(vault_id, tags=tags)
        return ids

    def run(self, item: Selection, *, deadline: float = NOW + 600) -> InvocationResult:
        return self.application.run_invocation([item], deadline=deadline)

    def deliver_queue(self) -> BatchResult:
        """Deliver what the request queue holds through the real SQS parser, and empty it."""
        records = [
            sqs_record(fanout_message(sent, vault_id), message_id=f"m-{index}")
            for index, (sent, vault_id) in enumerate(self.queue.sent)
        ]
        self.queue.sent.clear()
        messages = [
            (record["messageId"], partial(parse_sqs_record, record, defaults=DEFAULTS)) for record in records
        ]
        return self.application.run_sqs_batch(messages, deadline=self.clock.now() + 600)

    def created_vaults(self) -> list[str]:
        return [call["body"]["checkpoint"]["vault_id"] for name, call in self.cbr.calls if name == "create"]


def kinds(outcomes: Sequence[Outcome]) -> list[str]:
    return [outcome.kind for outcome in outcomes]


# -- which vaults -----------------------------------------------------------------------------------------


def test_every_criterion_must_match_tags_policy_and_object_type() -> None:
    world = World(inline_max=10)
    world.vaults.add(vault(1), tags={"env": "prod"}, policy_id=POLICY, object_type="server")
    world.vaults.add(vault(2), tags={"env": "prod"}, policy_id=POLICY, object_type="disk")
    world.vaults.add(vault(3), tags={"env": "prod"}, object_type="server")
    world.vaults.add(vault(4), tags={"env": "dev"}, policy_id=POLICY, object_type="server")

    result = world.run(selection({"tags": {"env": "prod"}, "policy_id": POLICY, "object_type": "server"}))

    assert world.created_vaults() == [vault(1)]
    assert result.expansions[0].vault_ids == (vault(1),)
    # One tag query, and one ListVault with both filters: CBR does the AND of those two.
    assert world.vaults.calls == [
        ("vault_ids_with_tags", {"tags": {"env": ["prod"]}}),
        ("list_vaults", {"policy_id": POLICY, "object_type": "server"}),
    ]


def test_a_selection_by_tags_alone_does_not_list_every_vault() -> None:
    world = World(inline_max=10)
    world.fleet(2, env="prod")
    world.fleet(2, env="dev")

    world.run(selection({"tags": {"env": "prod"}}))

    assert [name for name, _ in world.vaults.calls] == ["vault_ids_with_tags"]
    assert world.created_vaults() == [vault(0), vault(1)]


def test_all_selects_every_vault_of_the_project() -> None:
    world = World(inline_max=10)
    every = world.fleet(2, env="prod") + world.fleet(1)

    result = world.run(selection({"all": True}))

    assert world.vaults.calls == [("list_vaults", {"policy_id": None, "object_type": None})]
    assert sorted(world.created_vaults()) == every
    assert kinds(result.outcomes) == ["created"] * 3


# -- inline or queued -----------------------------------------------------------------------------------


def test_up_to_the_inline_maximum_every_vault_runs_in_the_invocation() -> None:
    world = World(inline_max=3)
    ids = world.fleet(3, backup="nightly")

    result = world.run(selection({"tags": {"backup": "nightly"}}, name="fleet-{time:%Y%m%d}"))

    assert result.must_retry is False
    assert kinds(result.outcomes) == ["created"] * 3
    assert world.created_vaults() == ids
    assert world.queue.sent == []
    (expansion,) = world.events.expansions
    assert (expansion.vault_ids, expansion.queued) == (tuple(ids), 0)
    names = {outcome.item.name for outcome in result.outcomes if isinstance(outcome.item, BackupRequest)}
    assert names == {"fleet-20240501"}  # the scheduled time's, for every vault


def test_beyond_the_inline_maximum_every_vault_goes_to_the_request_queue_then_runs_from_it() -> None:
    world = World(inline_max=3)
    ids = world.fleet(4, backup="nightly")

    result = world.run(selection({"tags": {"backup": "nightly"}}))

    assert (result.must_retry, result.outcomes) == (False, ())
    assert world.cbr.calls == []
    assert [vault_id for _, vault_id in world.queue.sent] == ids
    assert world.events.expansions[0].queued == 4

    batch = world.deliver_queue()

    assert batch.item_failures == ()
    assert kinds(batch.outcomes) == ["created"] * 4
    assert sorted(world.created_vaults()) == ids
    assert {outcome.item.trigger.kind for outcome in batch.outcomes} == {"schedule"}


def test_a_vault_keeps_its_key_inline_or_queued_so_a_retry_across_the_threshold_makes_no_second_one() -> None:
    world = World(inline_max=3)
    ids = world.fleet(3, backup="nightly")
    item = selection({"tags": {"backup": "nightly"}})
    first = world.run(item)
    inline_keys = {outcome.item.idempotency_key for outcome in first.outcomes}

    # The trigger is delivered again after a fourth vault was tagged: now the selection is queued.
    world.fleet(1, backup="nightly")
    world.run(item)
    batch = world.deliver_queue()

    assert len(world.created_vaults()) == 4  # three from the first run, only the new one now
    again = {outcome.item.idempotency_key: outcome.duplicate for outcome in batch.outcomes}
    assert {key for key, duplicate in again.items() if duplicate} == inline_keys
    assert sorted(world.created_vaults()) == sorted([*ids, vault(3)])


def test_a_retried_trigger_re_expands_to_the_same_keys_and_creates_nothing_twice() -> None:
    world = World(inline_max=2)
    world.fleet(5, backup="nightly")
    item = selection({"tags": {"backup": "nightly"}})
    world.run(item)
    first = world.deliver_queue()

    world.run(item)
    second = world.deliver_queue()

    assert len(world.created_vaults()) == 5
    assert [outcome.item.idempotency_key for outcome in second.outcomes] == [
        outcome.item.idempotency_key for outcome in first.outcomes
    ]
    assert all(outcome.duplicate for outcome in second.outcomes)


def test_a_queue_message_for_another_request_cannot_take_a_vaults_key() -> None:
    world = World(inline_max=10)
    (vault_id,) = world.fleet(1, backup="nightly")
    item = selection({"tags": {"backup": "nightly"}}, name="nightly")
    # Someone who may send to the request queue names the selection's key with their own parameters.
    forged = Selection(item.idempotency_key, item.project_id, item.selector, {"name": "theirs"}, item.trigger)
    (forged_item,) = parse_sqs_record(sqs_record(fanout_message(forged, vault_id)), defaults=DEFAULTS)

    result = world.run(item)

    assert isinstance(forged_item, BackupRequest)
    assert forged_item.idempotency_key != result.outcomes[0].item.idempotency_key
    # Naming the same request again gives the same key: at worst, the same checkpoint.
    (same,) = parse_sqs_record(sqs_record(fanout_message(item, vault_id)), defaults=DEFAULTS)
    assert same.idempotency_key == result.outcomes[0].item.idempotency_key


def test_a_fanout_message_is_held_to_the_functions_configuration() -> None:
    item = selection({"all": True})
    other_project = Selection("u:k", "someone-elses-project", {"all": True}, {}, item.trigger)
    body = fanout_message(other_project, vault(1))
    (rejected,) = parse_sqs_record(sqs_record(body), defaults=DEFAULTS)
    assert isinstance(rejected, Rejected)
    assert [error.field for error in rejected.errors] == ["fanout.project_id"]

    bad = fanout_message(item, vault(1))
    bad["fanout"]["parameters"] = {"resources": ["x"]}
    (rejected,) = parse_sqs_record(sqs_record(json.dumps(bad)), defaults=DEFAULTS)
    assert isinstance(rejected, Rejected)
    assert [error.field for error in rejected.errors] == ["fanout.parameters.resources"]

    floor = RequestDefaults(project_id=PROJECT, default_vault_id=None, dry_run=True)
    (dry,) = parse_sqs_record(sqs_record(fanout_message(item, vault(1))), defaults=floor)
    assert isinstance(dry, BackupRequest)
    assert dry.dry_run is True


# -- failures -------------------------------------------------------------------------------------------


def test_a_partial_send_is_handed_back_and_the_retry_sends_what_was_refused_without_doubling() -> None:
    world = World(inline_max=2)
    ids = world.fleet(5, backup="nightly")
    world.queue.refuse = {ids[3]}
    item = selection({"tags": {"backup": "nightly"}})

    first = world.run(item)

    assert first.must_retry is True
    assert first.transient[0].info.code == "ThrottlingException"
    assert world.events.expansions == []  # Expanded only once the whole selection is on its way
    world.deliver_queue()  # the four that were taken run meanwhile

    second = world.run(item)
    world.deliver_queue()

    assert second.must_retry is False
    assert sorted(world.created_vaults()) == ids  # five vaults, five checkpoints: 0 lost, 0 doubled
    assert len(world.events.expansions) == 1


def test_no_request_queue_hands_a_large_selection_back_and_names_the_setting() -> None:
    world = World(inline_max=2, queue=False)
    world.fleet(3, backup="nightly")

    result = world.run(selection({"tags": {"backup": "nightly"}}))

    assert result.must_retry is True
    assert result.transient[0].info.code == "RequestQueueNotConfigured"
    assert "REQUEST_QUEUE_URL" in result.transient[0].info.message
    assert world.cbr.calls == []


def test_an_expansion_out_of_time_is_handed_back_and_the_retry_finishes_it() -> None:
    world = World(inline_max=2)
    ids = world.fleet(SEND_CHUNK + 5, backup="nightly")
    item = selection({"tags": {"backup": "nightly"}})
    sent_before: list[int] = []

    def slow_send(selection: Selection, vault_ids: Sequence[str]) -> list[QueueUnavailable | None]:
        sent_before.append(len(world.queue.sent))
        world.clock.advance(30)  # each chunk of sends takes 30 s
        return FakeRequestQueue.send_vaults(world.queue, selection, vault_ids)

    world.queue.send_vaults = slow_send  # type: ignore[method-assign]
    deadline = NOW + 5.0 + MIN_SEND_SECONDS + 20  # time for one chunk only

    first = world.run(item, deadline=deadline)

    assert first.must_retry is True
    assert first.transient[0].info.code == "ExpansionOutOfTime"
    assert len(world.queue.sent) == SEND_CHUNK
    world.deliver_queue()

    second = world.run(item, deadline=world.clock.now() + 600)
    world.deliver_queue()

    assert second.must_retry is False
    assert sorted(world.created_vaults()) == ids


def test_a_throttled_listing_is_retried_under_the_policy() -> None:
    world = World(inline_max=10)
    ids = world.fleet(2, backup="nightly")
    world.vaults.failures = [THROTTLED]

    result = world.run(selection({"tags": {"backup": "nightly"}}))

    assert result.must_retry is False
    assert world.created_vaults() == ids
    assert len(world.clock.slept) == 1


def test_a_listing_that_stays_throttled_hands_the_trigger_back() -> None:
    world = World(inline_max=10)
    world.fleet(2, backup="nightly")
    world.vaults.failures = [THROTTLED] * 3

    result = world.run(selection({"tags": {"backup": "nightly"}}))

    assert result.must_retry is True
    assert result.transient[0].info.code == "APIGW.0308"
    assert (world.cbr.calls, world.events.expansions) == ([], [])


def test_a_listing_refused_for_good_ends_the_selection_as_failed_without_retrying() -> None:
    world = World(inline_max=10)
    world.fleet(2, backup="nightly")
    world.vaults.failures = [REFUSED]

    result = world.run(selection({"tags": {"backup": "nightly"}}))

    assert result.must_retry is False
    assert world.cbr.calls == []
    (expansion,) = world.events.expansions
    detail_type, detail = expansion_detail(expansion)
    assert (detail_type, detail["outcome"], detail["stage"]) == (
        "CBR Checkpoint Failed",
        "failed",
        "selection",
    )
    assert detail["error"]["code"] == "BackupService.6301"


def test_an_expanded_event_not_published_hands_the_trigger_back() -> None:
    world = World(inline_max=10)
    world.fleet(1, backup="nightly")
    item = selection({"tags": {"backup": "nightly"}})
    world.events.refused_keys = {item.idempotency_key}

    result = world.run(item)

    assert result.must_retry is True
    assert "1 selection event(s) were not published" in result.failure_message()


# -- empty, dry run, the event ---------------------------------------------------------------------------


def test_an_empty_selection_is_an_expansion_of_nothing() -> None:
    world = World()
    world.fleet(2, backup="weekly")

    result = world.run(selection({"tags": {"backup": "nightyl"}}))

    assert (result.must_retry, result.outcomes) == (False, ())
    (expansion,) = result.expansions
    assert expansion.vault_ids == ()
    assert expansion_detail(expansion)[1]["selected"] == 0


@pytest.mark.parametrize("count", [2, 5], ids=["inline", "queued"])
def test_a_dry_run_names_every_vault_and_creates_nothing(count: int) -> None:
    world = World(inline_max=3)
    ids = world.fleet(count, backup="nightly")

    result = world.run(selection({"tags": {"backup": "nightly"}}, dry_run=True))
    batch = world.deliver_queue()

    assert world.cbr.calls == []
    validated = [*result.outcomes, *batch.outcomes]
    assert kinds(validated) == ["validated"] * count
    assert (
        sorted(outcome.item.vault_id for outcome in validated if isinstance(outcome.item, BackupRequest))
        == ids
    )
    detail = expansion_detail(world.events.expansions[0])[1]
    assert (detail["dry_run"], detail["selected"]) == (True, count)


def test_the_expanded_event_lists_the_first_vault_ids_and_counts_them_all() -> None:
    item = selection({"tags": {"env": ["prod", "staging"]}}, region="cn-north-4")
    ids = tuple(vault(index) for index in range(MAX_EXPANDED_VAULT_IDS + 7))

    detail_type, detail = expansion_detail(Expansion(item, ids, queued=len(ids)))

    assert detail_type == "CBR Backup Selection Expanded"
    assert detail["outcome"] == "expanded"
    assert (detail["selected"], detail["queued"], detail["vault_ids_omitted"]) == (107, 107, 7)
    assert detail["vault_ids"] == list(ids[:MAX_EXPANDED_VAULT_IDS])
    assert detail["selector"] == {"tags": {"env": ["prod", "staging"]}}
    assert (detail["region"], detail["idempotency_key"]) == ("cn-north-4", item.idempotency_key)
    assert detail["trigger"]["kind"] == "schedule"
