"""The fault matrix of `make faults` (devtools/faults), row by row: each scenario in both trigger modes.

Each row delivers its trigger as the platform would (redeliveries, new execution environments, the DynamoDB
ledger in moto) and must keep every invariant: at most one checkpoint per idempotency key, every created
checkpoint reported, nothing lost, no Failed for a transient fault.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cbr_checkpointer.domain import Claimed
from cbr_checkpointer.handler import lambda_handler
from cbr_checkpointer.ledger import DynamoDBLedger, MemoryLedger
from cbr_checkpointer.local_context import LocalContext
from cbr_checkpointer.observability import logger
from cbr_checkpointer.ports import Ledger
from devtools.faults import MODES, SCENARIOS, Harness, Mode, Scenario, signatures_and_tokens, table_lines
from devtools.sandbox import HUAWEI_SK, PROJECT_ID, VAULT_ID, Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def harness(sandbox_session: Sandbox) -> Iterator[Harness]:
    with Harness(sandbox_session) as harness:
        yield harness


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[scenario.name for scenario in SCENARIOS])
def test_fault(scenario: Scenario, mode: Mode, sandbox: Sandbox, harness: Harness, secret_scan: Any) -> None:
    row = harness.run(scenario, mode)

    secret_scan.add(*row.errors)
    assert row.passed, "\n" + "\n".join(table_lines([row]))


def test_the_matrix_covers_the_required_faults() -> None:
    assert len(SCENARIOS) >= 20
    assert len({scenario.name for scenario in SCENARIOS}) == len(SCENARIOS)
    outcomes = {outcome for scenario in SCENARIOS for outcome in scenario.expect.outcomes}
    assert outcomes == {"created", "failed", "rejected", "pending"}
    assert any(scenario.abandon_first for scenario in SCENARIOS)
    assert any(scenario.copies > 1 for scenario in SCENARIOS)
    assert any(scenario.auth == "token" for scenario in SCENARIOS)


# -- regression: the body of a key is pinned by its first claim (found by drop-after-create-templated-name)

NOW = 1_800_000_000.0


def _ledgers(sandbox: Sandbox) -> list[Ledger]:
    table = sandbox.create_ledger_table()
    return [MemoryLedger(ttl_seconds=3600), DynamoDBLedger(sandbox.aws("dynamodb"), table, ttl_seconds=3600)]


def test_a_key_keeps_the_body_of_its_first_claim(sandbox: Sandbox) -> None:
    first = {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": "manual-0101"}}}
    later = {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": "manual-0102"}}}
    for ledger in _ledgers(sandbox):
        key = f"k-{uuid.uuid4()}"
        assert ledger.claim(key, now=NOW, lease_until=NOW + 60, request=first) == Claimed()

        # the holder died (its lease ran out): the next claim gets the first body to reconcile against
        taken_over = ledger.claim(key, now=NOW + 61, lease_until=NOW + 121, request=later)
        assert taken_over == Claimed(reconcile_since=NOW, request=first), type(ledger).__name__

        # and so does the one after a release that says CBR may have acted
        ledger.release(key, now=NOW + 62, reconcile_since=NOW)
        again = ledger.claim(key, now=NOW + 63, lease_until=NOW + 123, request=later)
        assert again == Claimed(reconcile_since=NOW, request=first), type(ledger).__name__


def test_a_released_key_forgets_its_body(sandbox: Sandbox) -> None:
    first = {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": "a"}}}
    later = {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"name": "b"}}}
    for ledger in _ledgers(sandbox):
        key = f"k-{uuid.uuid4()}"
        ledger.claim(key, now=NOW, lease_until=NOW + 60, request=first)
        ledger.release(key, now=NOW + 1, reconcile_since=None)  # CBR refused: nothing can have happened

        assert ledger.claim(key, now=NOW + 2, lease_until=NOW + 62, request=later) == Claimed()


# -- the secret scan that guards every sandbox test must see a leak


def test_the_secret_scan_sees_leaks_in_output_and_logs(sandbox: Sandbox, secret_scan: Any) -> None:
    lambda_handler({"vault_id": VAULT_ID, "idempotency_key": "scan-self-test"}, LocalContext())
    (signature,) = signatures_and_tokens(r for r in sandbox.emulator.requests if r.method == "POST")
    assert secret_scan.leaks() == []

    print(f"debug: sk={HUAWEI_SK}")
    logging.getLogger("cbr_checkpointer.scan_self_test").warning("signed with %s", signature)

    assert len(secret_scan.leaks()) == 2
    secret_scan.leak_expected = True


def test_the_secret_scan_reads_the_lines_the_function_log_handler_writes(
    sandbox: Sandbox, secret_scan: Any
) -> None:
    lambda_handler({"vault_id": VAULT_ID, "idempotency_key": "scan-handler-test"}, LocalContext())
    (signature,) = signatures_and_tokens(r for r in sandbox.emulator.requests if r.method == "POST")
    assert secret_scan.leaks() == []

    # An appended key is in no log record, only in the lines the handler writes; a bare signature is
    # not a secret the function remembers, so redaction lets it through and only the scan can see it.
    logger.append_keys(debug_signature=signature)
    try:
        logger.info("signed")
    finally:
        logger.remove_keys(["debug_signature"])

    assert len(secret_scan.leaks()) == 1
    secret_scan.leak_expected = True


def test_the_secret_scan_sees_leaks_in_events(sandbox: Sandbox, secret_scan: Any) -> None:
    sandbox.aws("events").call(
        "PutEvents",
        {
            "Entries": [
                {
                    "Source": "cbr.checkpointer",
                    "DetailType": "CBR Checkpoint Failed",
                    "Detail": json.dumps({"project_id": PROJECT_ID, "error": {"message": HUAWEI_SK}}),
                    "EventBusName": "cbr-checkpointer",
                }
            ]
        },
    )
    assert len(sandbox.published_events()) == 1

    assert len(secret_scan.leaks()) == 1
    secret_scan.leak_expected = True
