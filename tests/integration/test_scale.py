"""`make scale` in small: 60 vaults through 2 warm environments (processes) polling moto's SQS, against the
emulator with a create rate limit. Every vault must get exactly one checkpoint and every request must end as
its Created event, whatever the throttling and the redeliveries it causes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cbr_checkpointer.retry import RetryPolicy
from devtools.esm import BATCH_SIZE
from devtools.faults import leaks, static_secrets
from devtools.scale import CREATED, MAX_RECEIVES, ScaleConfig, run_scale, vault_id

pytestmark = pytest.mark.integration

VAULTS = 60
ENVIRONMENTS = 2
# 20 creates in flight at first against a bucket of 4: throttled from the first batch on.
RATE = 4.0


@pytest.mark.timeout(300)
def test_a_fleet_gives_every_vault_exactly_one_checkpoint_under_a_create_rate_limit(tmp_path: Path) -> None:
    # A backlog of 20: most requests are sent while the fleet is at work.
    config = ScaleConfig(
        vaults=VAULTS,
        rate=RATE,
        environments=ENVIRONMENTS,
        visibility_timeout=10,
        backlog=20,
        log_dir=tmp_path,
    )
    result = run_scale(config)
    mapping = result.mapping

    assert result.problems == []
    assert mapping.drained
    # Exactly once, from the emulator's state
    assert result.checkpoints_per_vault == Counter({vault_id(index): 1 for index in range(VAULTS)})
    # Nothing lost: every request (its SQS message) ended as a Created event naming a checkpoint of its
    # own vault
    created = [event for event in result.events if event["detail-type"] == CREATED]
    assert {event["detail"]["trigger"]["id"] for event in created} == set(result.request_vaults)
    assert {event["detail"]["checkpoint"]["id"] for event in created} == {
        event["detail"]["checkpoint"]["id"] for event in created if not event["detail"]["duplicate"]
    }
    assert all(
        event["detail"]["vault_id"] == result.request_vaults[event["detail"]["trigger"]["id"]]
        for event in created
    )
    assert result.dead_letters == 0
    # The limit was in force, and every create it let through made a checkpoint
    assert result.throttled > 0
    assert result.creates_sent == result.checkpoints + result.throttled
    # At most every attempt of every delivery throttled: the retry policy bounds the retries
    assert result.throttled <= RetryPolicy().max_attempts * mapping.records
    # The mapping: every message delivered, again only after a hand-back or a visibility timeout that ran
    # out (a receive whose answer was lost and retried counts as a receive, as in SQS, so a message can
    # reach the handler first with a receive count of 2), in batches of at most 10, by both environments
    assert len(mapping.messages) == VAULTS
    assert mapping.records - mapping.redelivered <= VAULTS
    assert mapping.redelivered >= mapping.handed_back
    assert all(invocation.records <= BATCH_SIZE for invocation in mapping.invocations)
    assert all(max(invocation.receive_counts) <= MAX_RECEIVES for invocation in mapping.invocations)
    assert {invocation.environment for invocation in mapping.invocations} == set(range(ENVIRONMENTS))
    assert mapping.errors == []
    assert mapping.poll_errors == []
    # Progress was sampled from the start to the last checkpoint
    checkpoints = [sample.checkpoints for sample in result.samples]
    assert checkpoints == sorted(checkpoints)
    assert checkpoints[0] == 0
    assert checkpoints[-1] == VAULTS
    # The environments' logs hold the function's lines and none of the sandbox's secrets
    logs = [path.read_text(encoding="utf-8") for path in sorted(tmp_path.glob("environment-*.log"))]
    assert len(logs) == ENVIRONMENTS
    assert all("request finished" in log for log in logs)
    assert leaks(logs, static_secrets()) == []
