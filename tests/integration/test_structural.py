"""Structural budgets, counted on the wire (not timed): connections, tokens, PutEvents, overlap.

`make bench` measures the same things side by side with a reference handler; these tests keep them
from regressing. Counts come from the servers: the emulator counts TCP connections and IAM token
requests, and a counting proxy in front of moto counts PutEvents requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cbr_checkpointer.handler import lambda_handler
from cbr_checkpointer.local_context import LocalContext
from cbr_checkpointer.runtime import get_runtime
from devtools.faults import FaultProxy
from devtools.records import sqs_record
from devtools.sandbox import RESOURCE_ID, VAULT_ID, Sandbox

WARM_INVOCATIONS = 100


def sqs_batch(size: int) -> dict[str, Any]:
    body = {"vault_id": VAULT_ID, "resources": [RESOURCE_ID], "name": "queued-{time:%Y%m%d%H%M%S}"}
    return {"Records": [sqs_record(body) for _ in range(size)]}


def checkpoint_creates(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.emulator.requests if r.method == "POST" and r.path.endswith("/checkpoints"))


@pytest.fixture
def moto_proxy(sandbox: Sandbox) -> Iterator[FaultProxy]:
    """A recording proxy in front of moto (it keeps no request log); the AWS calls go through it."""
    proxy = FaultProxy("moto-proxy").start(sandbox.moto_url)
    try:
        with sandbox.configured(AWS_ENDPOINT_URL=proxy.url):
            yield proxy
    finally:
        proxy.stop()


def test_100_warm_invocations_reuse_at_most_max_concurrency_connections(sandbox: Sandbox) -> None:
    # Given a little latency, so that every batch really has several calls in flight at once
    sandbox.emulator.latency = 0.01
    max_concurrency = get_runtime().settings.max_concurrency
    sandbox.aws("events").call("CreateEventBus", {"Name": "uncaptured"})  # keeps moto's work small

    # When one execution environment handles 100 SQS batches of 10
    with sandbox.configured(EVENT_BUS_NAME="uncaptured"):
        for _ in range(WARM_INVOCATIONS):
            response = lambda_handler(sqs_batch(10), LocalContext())
            assert response["batchItemFailures"] == []

    # Then every request was made, over a pool that never grew beyond MAX_CONCURRENCY connections
    assert checkpoint_creates(sandbox) == WARM_INVOCATIONS * 10
    assert 1 <= sandbox.emulator.connections_opened <= max_concurrency


def test_token_mode_asks_iam_once_across_100_warm_invocations(sandbox: Sandbox) -> None:
    sandbox.auth = "token"
    with sandbox.configured():
        for _ in range(WARM_INVOCATIONS):
            assert lambda_handler(sqs_batch(2), LocalContext())["batchItemFailures"] == []

    assert checkpoint_creates(sandbox) == WARM_INVOCATIONS * 2
    assert sandbox.emulator.token_requests == 1


def test_one_sqs_batch_of_ten_results_is_one_put_events_request(
    sandbox: Sandbox, moto_proxy: FaultProxy
) -> None:
    response = lambda_handler(sqs_batch(10), LocalContext())

    assert response["batchItemFailures"] == []
    assert moto_proxy.count(target="AWSEvents.PutEvents") == 1
    published = sandbox.published_events()
    assert [event["detail-type"] for event in published] == ["CBR Checkpoint Created"] * 10


def test_the_records_of_a_batch_are_sent_to_cbr_concurrently(sandbox: Sandbox) -> None:
    # Given a CBR that takes 0.3 s per call
    sandbox.emulator.latency = 0.3
    max_concurrency = get_runtime().settings.max_concurrency

    # When a batch of 10 arrives
    response = lambda_handler(sqs_batch(10), LocalContext())

    # Then the emulator was serving as many creates at once as the function allows, and no more
    assert response["batchItemFailures"] == []
    assert checkpoint_creates(sandbox) == 10
    assert sandbox.emulator.peak_in_flight == min(10, max_concurrency)
