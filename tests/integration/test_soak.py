"""Soak: 1,000 requests through the SQS path in batches of 10, with 1 % seeded random transient faults.

Failed records are redelivered as SQS would (same messageId and body, bounded rounds), the ledger is
DynamoDB in moto, and every round runs in a new execution environment. At the end, the invariants of
the fault matrix must hold for every one of the 1,000 idempotency keys.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cbr_checkpointer.handler import lambda_handler
from cbr_emulator import Fault
from devtools.faults import (
    Harness,
    cbr_error,
    gateway_error,
    throttle_put_events,
)
from devtools.records import sqs_record
from devtools.sandbox import REGION, RESOURCE_ID, VAULT_ID, LocalContext, Sandbox

pytestmark = pytest.mark.integration

REQUESTS = 1000
BATCH_SIZE = 10
# A harder run by hand: SOAK_FAULT_RATE=0.2 SOAK_SEED=7 pytest -s tests/integration/test_soak.py
FAULT_RATE = float(os.environ.get("SOAK_FAULT_RATE", "0.01"))
MAX_ROUNDS = 6  # the first delivery and up to five redeliveries (the template's maxReceiveCount is 5)
SEED = int(os.environ.get("SOAK_SEED", "20261127"))
LAMBDA_TIMEOUT = 6.0  # one second of retry budget beyond the service's safety margin
READ_TIMEOUT = "0.3"


def _cbr_fault(**fields: Any) -> Callable[[Harness], None]:
    return lambda harness: harness.sandbox.emulator.faults.append(Fault(**fields))


# Transient faults only (no Failed may come of them), the ambiguous drops-after weighted up.
FAULTS: dict[str, Callable[[Harness], None]] = {
    "429 APIGW.0308": _cbr_fault(
        status=429, body=gateway_error("APIGW.0308", "throttled"), headers={"Retry-After": "0"}
    ),
    "500 BackupService.0002": _cbr_fault(status=500, body=cbr_error("BackupService.0002", "busy")),
    "500 BackupService.9910": _cbr_fault(status=500, body=cbr_error("BackupService.9910", "unknown")),
    "502 APIGW.0201": _cbr_fault(status=502, body=gateway_error("APIGW.0201", "backend unavailable")),
    "drop before": _cbr_fault(drop="before"),
    "drop after": _cbr_fault(drop="after"),
    "drop after ": _cbr_fault(drop="after"),
    "hang after create": _cbr_fault(delay=1.0),
    "PutEvents throttled": lambda harness: throttle_put_events(harness.aws),
}


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@pytest.fixture
def harness(sandbox: Sandbox) -> Iterator[Harness]:
    with Harness(sandbox) as harness:
        yield harness


@pytest.mark.timeout(300)
def test_a_thousand_requests_with_one_percent_faults(sandbox: Sandbox, harness: Harness) -> None:
    rng = random.Random(SEED)
    table = sandbox.create_ledger_table()
    environment = harness.environment(table) | {"CBR_READ_TIMEOUT_SECONDS": READ_TIMEOUT}
    sent_millis = str(int(time.time() * 1000))
    bodies = {
        str(uuid.UUID(int=rng.getrandbits(128), version=4)): json.dumps(
            {"vault_id": VAULT_ID, "resources": [RESOURCE_ID]}
            if index % 2
            else {"vault_id": VAULT_ID, "name": f"soak-{index:04d}-{{time:%Y%m%d}}"}
        )
        for index in range(REQUESTS)
    }
    injected: Counter[str] = Counter()
    returned_per_round: list[int] = []
    events: list[dict[str, Any]] = []
    started = time.monotonic()

    pending = list(bodies)
    for round_number in range(MAX_ROUNDS):
        if not pending:
            break
        returned: list[str] = []
        with sandbox.configured(**environment):  # each round in a new execution environment
            for batch_number, batch in enumerate(_chunks(pending, BATCH_SIZE)):
                for _ in batch:
                    if rng.random() < FAULT_RATE:
                        kind = rng.choice(sorted(FAULTS))
                        FAULTS[kind](harness)
                        injected[kind.strip()] += 1
                records = [
                    sqs_record(
                        bodies[message_id],
                        message_id=message_id,
                        receive_count=round_number + 1,
                        sent_millis=sent_millis,
                        region=REGION,
                    )
                    for message_id in batch
                ]
                response = lambda_handler({"Records": records}, LocalContext(timeout_seconds=LAMBDA_TIMEOUT))
                returned += [failure["itemIdentifier"] for failure in response["batchItemFailures"]]
                # A fault no create used up does not linger into the next batch.
                sandbox.emulator.faults.clear()
                harness.aws.reset()
                if batch_number % 20 == 19:
                    events += sandbox.published_events()
        events += sandbox.published_events()
        returned_per_round.append(len(returned))
        pending = returned
        harness.wait_for_live_leases(table)
    elapsed = time.monotonic() - started

    created = sandbox.emulator.created
    # Each message is its own request: keyed from its messageId, which is its trigger's id
    by_key: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_key.setdefault(event["detail"]["trigger"]["id"], []).append(event)
    kinds = Counter(event["detail-type"] for event in events)
    duplicates = sum(1 for event in events if event["detail"].get("duplicate"))
    print(
        f"\nsoak: {REQUESTS} requests in {elapsed:.1f}s; faults injected {dict(injected)}; "
        f"returned per round {returned_per_round}; {len(created)} checkpoints; events {dict(kinds)} "
        f"({duplicates} duplicates); {harness.cbr.count(method='POST', path='/checkpoints')} creates sent"
    )

    # Nothing lost: every request ended, as Created (every fault was transient), within the rounds
    assert pending == [], f"{len(pending)} requests still being returned after {MAX_ROUNDS} deliveries"
    assert set(by_key) == set(bodies)
    assert len({event["detail"]["idempotency_key"] for event in events}) == len(bodies)
    assert set(kinds) == {"CBR Checkpoint Created"}
    assert sum(injected.values()) > 0
    # At most one checkpoint per key, and each key reports exactly one checkpoint, its own
    assert len(created) == REQUESTS
    names = Counter(checkpoint["extra_info"]["name"] for checkpoint in created)
    assert max(names.values()) == 1
    owner: dict[str, str] = {}
    for key, key_events in by_key.items():
        ids = {event["detail"]["checkpoint"]["id"] for event in key_events}
        assert len(ids) == 1, f"{key}: {ids}"
        assert owner.setdefault(ids.pop(), key) == key
        assert sum(1 for event in key_events if not event["detail"]["duplicate"]) <= 1
    assert set(owner) == {checkpoint["id"] for checkpoint in created}
