"""Any region from one deployment: two emulators on loopback stand in for two regions.

The function is configured for cn-north-4 (the sandbox's emulator); ap-southeast-1's endpoint is
overridden with the SDK's own variable to point at a second emulator. A request naming a region must
be created there and nowhere else, say so in its events, and be followed there to its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cbr_checkpointer.handler import lambda_handler
from cbr_checkpointer.local_context import LocalContext
from cbr_emulator import Emulator
from devtools.faults import signatures_and_tokens
from devtools.records import sqs_record
from devtools.sandbox import (
    HUAWEI_AK,
    HUAWEI_SK,
    PROJECT_ID,
    RESOURCE_ID,
    VAULT_ID,
    WATCH_QUEUE,
    Sandbox,
)

pytestmark = pytest.mark.integration

CONFIGURED_REGION = "cn-north-4"
OTHER_REGION = "ap-southeast-1"


@pytest.fixture(scope="module")
def other_region_session() -> Iterator[Emulator]:
    emulator = Emulator(project_id=PROJECT_ID, ak=HUAWEI_AK, sk=HUAWEI_SK, backup_duration=0.0)
    emulator.start()
    emulator.add_vault(VAULT_ID, [{"id": RESOURCE_ID, "type": "OS::Nova::Server", "name": "ecs-far-1"}])
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def other_region(sandbox: Sandbox, other_region_session: Emulator, secret_scan: Any) -> Iterator[Emulator]:
    """The second region's emulator, with the function configured for both regions and following
    completion; the configured region's backups finish at once too. What went over the wire to the
    second region is scanned for as the sandbox's own is."""
    other_region_session.reset()
    sandbox.emulator.backup_duration = 0.0
    with sandbox.configured(
        CBR_REGION=CONFIGURED_REGION,
        HUAWEICLOUD_SDK_REGION_CBR_AP_SOUTHEAST_1=other_region_session.base_url,
        WATCH_QUEUE_URL=sandbox.watch_queue_url,
    ):
        yield other_region_session
    secret_scan.secrets |= signatures_and_tokens(other_region_session.requests)


def invoke(sandbox: Sandbox, **request: Any) -> dict[str, Any]:
    """Invoke the handler directly with one request; the one event it published, as (type, detail)."""
    lambda_handler({"vault_id": VAULT_ID, **request}, LocalContext())
    (event,) = sandbox.published_events()
    detail: dict[str, Any] = event["detail"]
    return {"detail-type": event["detail-type"], **detail}


def test_a_request_naming_a_region_is_created_followed_and_reported_in_that_region_only(
    sandbox: Sandbox, other_region: Emulator
) -> None:
    created = invoke(sandbox, idempotency_key="far-1", region=OTHER_REGION)
    (scheduled,) = sandbox.watch_messages()
    finals = sandbox.follow_completion(lambda_handler)

    assert created["detail-type"] == "CBR Checkpoint Created"
    assert created["region"] == OTHER_REGION
    (checkpoint,) = other_region.created
    assert created["checkpoint"]["id"] == checkpoint["id"]
    assert scheduled["watch"]["region"] == OTHER_REGION
    ((final_type, final),) = [(event["detail-type"], event["detail"]) for event in finals]
    assert final_type == "CBR Checkpoint Completed"
    assert final["region"] == OTHER_REGION
    assert final["checkpoint"]["id"] == checkpoint["id"]
    looked_at = [r for r in other_region.requests if r.method == "GET" and checkpoint["id"] in r.path]
    assert len(looked_at) >= 1
    # The configured region's CBR heard nothing of it
    assert sandbox.emulator.created == []
    assert sandbox.emulator.requests == []


def test_a_request_naming_no_region_goes_to_the_configured_one_and_says_which(
    sandbox: Sandbox, other_region: Emulator
) -> None:
    created = invoke(sandbox, idempotency_key="near-1")
    (scheduled,) = sandbox.watch_messages()
    finals = sandbox.follow_completion(lambda_handler)

    assert created["region"] == CONFIGURED_REGION
    assert len(sandbox.emulator.created) == 1
    assert scheduled["watch"]["region"] == CONFIGURED_REGION
    assert [event["detail"]["region"] for event in finals] == [CONFIGURED_REGION]
    assert other_region.requests == []


def test_a_region_the_function_cannot_reach_is_rejected_naming_region(
    sandbox: Sandbox, other_region: Emulator
) -> None:
    rejected = invoke(sandbox, idempotency_key="nowhere-1", region="xx-nowhere-1")

    assert rejected["detail-type"] == "CBR Backup Request Rejected"
    assert [error["field"] for error in rejected["errors"]] == ["region"]
    assert sandbox.emulator.requests == []
    assert other_region.requests == []


def test_a_watch_message_scheduled_before_checks_named_their_region_is_followed_in_the_configured_one(
    sandbox: Sandbox, other_region: Emulator
) -> None:
    invoke(sandbox, idempotency_key="old-1")
    (scheduled,) = sandbox.take_watch_messages()
    old_style = {"watch": {name: value for name, value in scheduled["watch"].items() if name != "region"}}

    answer = lambda_handler({"Records": [sqs_record(old_style, queue=WATCH_QUEUE)]}, LocalContext())

    assert answer == {"batchItemFailures": []}
    ((final_type, final),) = [(event["detail-type"], event["detail"]) for event in sandbox.published_events()]
    assert final_type == "CBR Checkpoint Completed"
    assert "region" not in final  # the message did not say, and the check went where such checks go
    (checkpoint,) = sandbox.emulator.created
    assert [r.method for r in sandbox.emulator.requests if checkpoint["id"] in r.path] != []
    assert other_region.requests == []
