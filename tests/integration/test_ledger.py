"""Both ledgers follow the same claim -> complete / release rules that the service relies on.

The DynamoDB ledger runs against moto over loopback; the in-memory one needs no sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cbr_checkpointer.domain import (
    Busy,
    Claimed,
    Completed,
    ErrorInfo,
    ResourceError,
    ResourceResult,
    StepDone,
    StoredOutcome,
    StoredResult,
)
from cbr_checkpointer.ledger import DynamoDBLedger, MemoryLedger
from cbr_checkpointer.ports import Ledger
from devtools.sandbox import Sandbox

NOW = 1_800_000_000.0
LedgerFactory = Callable[[float], Ledger]


@pytest.fixture(params=["memory", "dynamodb"])
def make_ledger(request: pytest.FixtureRequest) -> Iterator[LedgerFactory]:
    if request.param == "memory":
        yield lambda ttl: MemoryLedger(ttl_seconds=ttl)
        return
    sandbox: Sandbox = request.getfixturevalue("sandbox")
    dynamodb = sandbox.aws("dynamodb")
    table = sandbox.create_ledger_table()
    yield lambda ttl: DynamoDBLedger(dynamodb, table, ttl_seconds=ttl)


def test_first_claim_holds_the_key_without_reconciliation(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(3600)

    assert ledger.claim("k", now=NOW, lease_until=NOW + 60) == Claimed(reconcile_since=None)


def test_a_live_lease_makes_the_next_claimer_wait(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(3600)
    ledger.claim("k", now=NOW, lease_until=NOW + 60)

    assert ledger.claim("k", now=NOW + 1, lease_until=NOW + 61) == Busy(lease_until=NOW + 60)


def test_an_expired_lease_is_taken_over_with_reconciliation_from_the_first_claim(
    make_ledger: LedgerFactory,
) -> None:
    # Given a holder that died (its lease ran out without complete or release)
    ledger = make_ledger(3600)
    ledger.claim("k", now=NOW, lease_until=NOW + 60)

    # When the redelivery claims after the deadline
    claim = ledger.claim("k", now=NOW + 61, lease_until=NOW + 121)

    # Then it must look for what the dead holder may have created since its claim
    assert claim == Claimed(reconcile_since=NOW)


def test_completed_keys_serve_their_result(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(3600)
    ledger.claim("k", now=NOW, lease_until=NOW + 60)
    ledger.complete("k", StoredOutcome("created", checkpoint={"id": "c1"}), now=NOW + 1)

    assert ledger.claim("k", now=NOW + 2, lease_until=NOW + 62) == Completed(
        StoredOutcome("created", checkpoint={"id": "c1"})
    )


@pytest.mark.parametrize(
    "result",
    [
        StoredOutcome("failed", error=ErrorInfo("api", "m", code="BackupService.6105", http_status=404)),
        StoredOutcome(
            "completed",
            checkpoint={"id": "c1"},
            resources=(
                ResourceResult(
                    "r", "available", "b-1", resource_name="web", resource_type="OS::Nova::Server"
                ),
                ResourceResult("v", "skipped", error=ResourceError(None, "busy")),
            ),
        ),
        StoredOutcome("timed_out", resources=()),
        StepDone(scheduled=True),
        StepDone(next_attempt=3),
        StepDone(final=True, message_id="m-1"),
        StepDone(final=True),
    ],
    ids=["failed", "completed", "timed-out-no-resources", "scheduled", "next", "final", "final-no-message"],
)
def test_every_stored_result_reads_back_as_it_was_stored(
    make_ledger: LedgerFactory, result: StoredResult
) -> None:
    ledger = make_ledger(3600)
    ledger.complete("k", result, now=NOW)

    assert ledger.claim("k", now=NOW + 1, lease_until=NOW + 60) == Completed(result)


def test_completed_keys_are_forgotten_after_the_ttl(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(100)
    ledger.complete("k", StoredOutcome("created"), now=NOW)

    assert ledger.claim("k", now=NOW + 101, lease_until=NOW + 160) == Claimed(reconcile_since=None)


def test_a_clean_release_lets_the_next_claim_start_fresh(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(3600)
    ledger.claim("k", now=NOW, lease_until=NOW + 60)
    ledger.release("k", now=NOW + 1, reconcile_since=None)

    assert ledger.claim("k", now=NOW + 2, lease_until=NOW + 62) == Claimed(reconcile_since=None)


def test_an_ambiguous_release_makes_the_next_claim_reconcile(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(3600)
    ledger.claim("k", now=NOW, lease_until=NOW + 60)
    ledger.release("k", now=NOW + 1, reconcile_since=NOW)

    assert ledger.claim("k", now=NOW + 2, lease_until=NOW + 62) == Claimed(reconcile_since=NOW)


def test_the_reconciliation_window_is_carried_by_every_later_claim(make_ledger: LedgerFactory) -> None:
    # Given an ambiguous failure, then a second holder that received the window and died
    ledger = make_ledger(3600)
    ledger.claim("k", now=NOW, lease_until=NOW + 60)
    ledger.release("k", now=NOW + 1, reconcile_since=NOW)
    assert ledger.claim("k", now=NOW + 2, lease_until=NOW + 62) == Claimed(reconcile_since=NOW)

    # Then the third claimer still searches from the first claim
    assert ledger.claim("k", now=NOW + 63, lease_until=NOW + 123) == Claimed(reconcile_since=NOW)


def test_two_racing_claimers_cannot_both_hold_a_key(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(3600)

    first = ledger.claim("k", now=NOW, lease_until=NOW + 60)
    second = ledger.claim("k", now=NOW, lease_until=NOW + 60)

    assert [type(first), type(second)] == [Claimed, Busy]


def test_releasing_a_completed_key_keeps_its_result(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(3600)
    ledger.complete("k", StoredOutcome("failed", error=ErrorInfo("api", "m")), now=NOW)

    ledger.release("k", now=NOW + 1, reconcile_since=None)

    assert isinstance(ledger.claim("k", now=NOW + 2, lease_until=NOW + 60), Completed)


def test_the_request_pinned_by_the_first_claim_stays_with_the_result(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(3600)
    first = {"project_id": "p", "body": {"checkpoint": {"vault_id": "v"}}}
    ledger.claim("k", now=NOW, lease_until=NOW + 60, request=first)
    ledger.complete("k", StoredOutcome("created", checkpoint={"id": "c1"}), now=NOW + 1)

    again = ledger.claim("k", now=NOW + 2, lease_until=NOW + 62, request={"project_id": "other"})

    # The later claimer can tell its request from the one that was done
    assert again == Completed(StoredOutcome("created", checkpoint={"id": "c1"}), request=first)


def test_a_checkpoint_has_one_owner_and_its_owner_may_claim_it_again(make_ledger: LedgerFactory) -> None:
    ledger = make_ledger(3600)

    assert ledger.own("cp-1", "u:first", now=NOW)
    assert ledger.own("cp-1", "u:first", now=NOW + 1)
    assert not ledger.own("cp-1", "u:second", now=NOW + 2)
    assert ledger.own("cp-2", "u:second", now=NOW + 3)
    # An owner record is no request key: claiming a key is unaffected by it
    assert ledger.claim("u:first", now=NOW, lease_until=NOW + 60) == Claimed()
