"""Every scenario of the fault matrix: what it scripts before the first delivery and the verdict it
must reach, with the scenario-specific checks (counts of calls, what an event must carry).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from cbr_checkpointer.retry import RetryPolicy
from cbr_checkpointer.service import MIN_CALL_SECONDS
from devtools.faults.model import MAX_REDELIVERIES, Expect, Row, Scenario, World
from devtools.faults.proxy import FaultProxy, Rule
from devtools.sandbox import PROJECT_ID, RESOURCE_ID, SECOND_VAULT_ID, VAULT_ID

# A Lambda timeout just long enough to start a request (the service's safety margin and one call's
# shortest wait), and a failure held back until the safety margin begins (AT_THE_MARGIN seconds into the
# invocation): that failure goes straight back to the trigger instead of being retried within the
# invocation. The timeout also bounds how long a lease can stay live.
NO_TIME_TO_RETRY = RetryPolicy().safety_margin + MIN_CALL_SECONDS + 0.5
AT_THE_MARGIN = NO_TIME_TO_RETRY - RetryPolicy().safety_margin


def _no_setup(world: World) -> None:
    """Nothing scripted."""


def cbr_error(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "error_msg": message}


def gateway_error(code: str, message: str) -> dict[str, str]:
    return {"error_code": code, "error_msg": message, "request_id": uuid.uuid4().hex}


def put_events_failing(code: str) -> Callable[[Any], dict[str, Any]]:
    def answer(document: Any) -> dict[str, Any]:
        entries = document.get("Entries", []) if isinstance(document, dict) else []
        failed = [{"ErrorCode": code, "ErrorMessage": "Rate exceeded"} for _ in entries]
        return {"FailedEntryCount": len(failed), "Entries": failed}

    return answer


def publisher_attempts() -> int:
    """The most attempts the function makes of one AWS call, or of one entry of a batch call."""
    return RetryPolicy().max_attempts


def send_message_batch_failing(code: str) -> Callable[[Any], dict[str, Any]]:
    """A SendMessageBatch answer that takes none of the entries, each failing with `code` (not the
    sender's fault, so worth another attempt)."""

    def answer(document: Any) -> dict[str, Any]:
        entries = document.get("Entries", []) if isinstance(document, dict) else []
        failed = [
            {"Id": entry["Id"], "Code": code, "Message": "Rate exceeded", "SenderFault": False}
            for entry in entries
        ]
        return {"Successful": [], "Failed": failed}

    return answer


def _is_completion(document: Any) -> bool:
    values = document.get("ExpressionAttributeValues", {}) if isinstance(document, dict) else {}
    return bool(values.get(":completed", {}).get("S") == "completed")


def _is_claim(document: Any) -> bool:
    item = document.get("Item", {}) if isinstance(document, dict) else {}
    return bool(item.get("status", {}).get("S") == "in_progress")


DYNAMODB_500 = {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "Internal error"}
DYNAMODB_THROTTLED = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded.",
}
EVENTS_500 = {"__type": "InternalException", "message": "Internal error"}


# -- scenario-specific checks


def _first_delivery_waited(seconds: float) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        if row.round_seconds[0] < seconds:
            yield f"the first delivery took {row.round_seconds[0]:.2f}s: Retry-After {seconds}s not honoured"

    return check


def _expanded(selected: int) -> Callable[[Row], Iterable[str]]:
    """The selection was published as expanded (again on each delivery that finished it, always alike)."""

    def check(row: Row) -> Iterable[str]:
        counts = {detail.get("selected") for detail in row.expansions()}
        if counts != {selected}:
            yield f"Expanded events select {sorted(map(str, counts))} vaults, expected {selected}"

    return check


def _first_delivery_quick(row: Row) -> Iterable[str]:
    if row.round_seconds[0] > 3.0:
        yield f"the first delivery slept {row.round_seconds[0]:.1f}s past what its deadline allows"


def _aws_calls(target: str, count: int) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        calls = row.aws.count(target=target)
        if calls != count:
            yield f"{calls} {target.lstrip('.')} calls, expected {count}"

    return check


def _cbr_posts(count: int) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        posts = row.cbr.count(method="POST", path="/checkpoints")
        if posts != count:
            yield f"{posts} create calls reached CBR, expected {count}"

    return check


def _token_requests(count: int) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        if row.token_requests != count:
            yield f"{row.token_requests} IAM token requests, expected {count}"

    return check


def _skipped_reported(row: Row) -> Iterable[str]:
    for event in row.events_of("CBR Checkpoint Created"):
        skipped = (event["checkpoint"].get("vault") or {}).get("skipped_resources") or []
        if [item.get("id") for item in skipped] != [SKIPPED_RESOURCE_ID]:
            yield f"skipped_resources in the event: {skipped!r}"
        elif skipped[0].get("code") != "BackupService.0002":
            yield f"skipped resource without its code: {skipped[0]!r}"


def _nothing_sent(row: Row) -> Iterable[str]:
    if row.cbr_requests:
        yield f"{len(row.cbr_requests)} request(s) reached the emulator for a rejected payload"


def _all(*checks: Callable[[Row], Iterable[str]]) -> Callable[[Row], Iterable[str]]:
    def check(row: Row) -> Iterable[str]:
        for one in checks:
            yield from one(row)

    return check


SKIP_VAULT_ID = "5f0c7e3a-1b2d-4c6e-8f9a-0b1c2d3e4f5a"
SKIPPED_RESOURCE_ID = "0c9b8a7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
KEPT_RESOURCE_ID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
OTHER_PROJECT_ID = "ffffffffffffffffffffffffffffffff"


def _setup_skip(world: World) -> None:
    world.emulator.add_vault(
        SKIP_VAULT_ID,
        [
            {"id": KEPT_RESOURCE_ID, "type": "OS::Nova::Server", "name": "ecs-kept"},
            {"id": SKIPPED_RESOURCE_ID, "type": "OS::Nova::Server", "name": "ecs-busy"},
        ],
        name="vault-skip",
    )
    world.emulator.mark_busy(SKIPPED_RESOURCE_ID, mode="skip")


def _setup_token_expiry(world: World) -> None:
    world.warm_token()
    world.emulator.expire_tokens()


def _setup_duplicate(world: World) -> None:
    # The create takes effect at once but its answer takes a second: the copies overlap for sure.
    world.fault(delay=1.0)


def _setup_lambda_timeout(world: World) -> None:
    # The create takes effect, then the answer is held far beyond the first delivery's deadline.
    world.fault(delay=60.0)


def throttle_put_events(aws: FaultProxy) -> None:
    """Every attempt of the publisher's next PutEvents gets its entries back as ThrottlingException."""
    aws.rules.append(
        Rule(
            target=".PutEvents",
            status=200,
            body=put_events_failing("ThrottlingException"),
            times=publisher_attempts(),
        )
    )


def _setup_putevents_exhausted(world: World) -> None:
    throttle_put_events(world.aws)


def _setup_putevents_5xx(world: World) -> None:
    world.aws.rules.append(Rule(target=".PutEvents", status=500, body=EVENTS_500, times=publisher_attempts()))


def _setup_reconcile_list_fails(world: World) -> None:
    world.fault(drop="after")
    world.fault(
        method="GET",
        path_suffix="/backups",
        status=500,
        body=cbr_error("BackupService.9910", "unknown exception"),
    )


def _setup_reconcile_list_refused(world: World) -> None:
    # Right after the ambiguous create, listing backups is refused once (a permission change still
    # propagating): whether a checkpoint exists is unknown, so the request cannot be Failed.
    world.fault(drop="after")
    world.fault(
        method="GET",
        path_suffix="/backups",
        status=403,
        body=gateway_error("APIGW.0302", "The IAM user is not authorized to access the API."),
    )


def _setup_reconcile_show_fails(world: World) -> None:
    # Right after a create, ShowCheckpoint may not know the checkpoint yet: CBR answers 404
    # BackupService.6217 for a little while.
    world.fault(drop="after")
    world.cbr.rules.append(
        Rule(
            method="GET",
            path="/checkpoints/",
            status=404,
            body=cbr_error("BackupService.6217", "The checkpoint does not exist."),
        )
    )


# The vaults a selection scenario selects, each with a resource of its own: a checkpoint of a vault
# without resources has no backups, so nothing could find it again after an ambiguous create.
FLEET_TAG = {"fleet": "fault-matrix"}
FLEET = {
    "c0ffee00-0000-4000-8000-000000000001": "c0ffee00-0000-4000-8000-0000000000a1",
    "c0ffee00-0000-4000-8000-000000000002": "c0ffee00-0000-4000-8000-0000000000a2",
}
SELECTION = {"select": {"tags": FLEET_TAG}}


def _add_fleet(world: World) -> None:
    for vault_id, resource_id in FLEET.items():
        world.emulator.add_vault(
            vault_id, [{"id": resource_id, "type": "OS::Nova::Server", "name": "ecs-fleet"}], tags=FLEET_TAG
        )


def _setup_listing_throttled(world: World) -> None:
    _add_fleet(world)
    world.fault(
        path_suffix="/vault/resource_instances/action",
        status=429,
        body=gateway_error("APIGW.0308", "The throttling threshold has been reached"),
    )


def _setup_second_listing_fails(world: World) -> None:
    # The tag query answers; ListVault, the second criterion's listing, fails once, held back until the
    # safety margin begins so that the failure goes back to the trigger however fast the machine is.
    _add_fleet(world)
    world.fault(
        method="GET",
        path_suffix="/vaults",
        status=500,
        body=cbr_error("BackupService.9910", "unknown"),
        delay=AT_THE_MARGIN,
    )


def _first_entry_failed_after_sending(document: Any) -> dict[str, Any]:
    """A SendMessageBatch answer that reports the first entry failed although SQS took it (the proxy
    forwarded the call first): the function sends it again, so that vault's message is on the queue twice."""
    entries = document.get("Entries", []) if isinstance(document, dict) else []
    failed = [{"Id": entries[0]["Id"], "Code": "InternalError", "Message": "try again", "SenderFault": False}]
    return {
        "Successful": [{"Id": entry["Id"], "MessageId": uuid.uuid4().hex} for entry in entries[1:]],
        "Failed": failed,
    }


def _setup_send_partial(world: World) -> None:
    _add_fleet(world)
    world.aws.rules.append(
        Rule(target=".SendMessageBatch", status=200, body=_first_entry_failed_after_sending, forward=True)
    )


def _setup_send_exhausted(world: World) -> None:
    _add_fleet(world)
    world.aws.rules.append(
        Rule(
            target=".SendMessageBatch",
            status=200,
            body=send_message_batch_failing("ThrottlingException"),
            times=publisher_attempts(),
        )
    )


def _setup_lambda_timeout_mid_expansion(world: World) -> None:
    _add_fleet(world)
    _setup_lambda_timeout(world)


SCENARIOS: list[Scenario] = [
    Scenario("happy-path", _no_setup, Expect(check=_cbr_posts(1))),
    Scenario(
        "429-throttled-retry-after",
        lambda w: w.fault(
            status=429,
            body=gateway_error("APIGW.0308", "The throttling threshold has been reached"),
            headers={"Retry-After": "1"},
        ),
        Expect(check=_all(_cbr_posts(2), _first_delivery_waited(1.0))),
    ),
    Scenario(
        "429-retry-after-past-deadline",
        lambda w: w.fault(
            status=429,
            body=gateway_error("APIGW.0308", "The throttling threshold has been reached"),
            headers={"Retry-After": "120"},
        ),
        Expect(returns=1, check=_all(_cbr_posts(2), _first_delivery_quick)),
    ),
    Scenario(
        "500-0002-busy-then-ok",
        lambda w: w.fault(status=500, body=cbr_error("BackupService.0002", "resources are being backed up")),
        Expect(returns=None, check=_cbr_posts(2)),
    ),
    Scenario(
        "busy-forever",
        lambda w: w.emulator.mark_busy(RESOURCE_ID, mode="reject"),
        Expect(outcomes=("pending",), checkpoints=0, returns=1 + MAX_REDELIVERIES),
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "400-9900-invalid-parameter",
        lambda w: w.fault(status=400, body=cbr_error("BackupService.9900", "parameter verification failed")),
        Expect(outcomes=("failed",), checkpoints=0, code="BackupService.9900", check=_cbr_posts(1)),
    ),
    Scenario(
        "404-6105-no-such-vault",
        _no_setup,
        Expect(outcomes=("failed",), checkpoints=0, code="BackupService.6105", check=_cbr_posts(1)),
        request={"vault_id": "0e5e7a3c-9d1b-4b8f-a2c4-6d8e0f1a3b5c"},
    ),
    Scenario(
        "400-6135-resource-not-in-vault",
        _no_setup,
        Expect(outcomes=("failed",), checkpoints=0, code="BackupService.6135", check=_cbr_posts(1)),
        request={"vault_id": VAULT_ID, "resources": ["6f1e2d3c-4b5a-4987-8a6b-5c4d3e2f1a0b"]},
    ),
    Scenario(
        "403-apigw-0302-forbidden",
        _no_setup,
        Expect(outcomes=("failed",), checkpoints=0, code="APIGW.0302", check=_cbr_posts(1)),
        request={"vault_id": VAULT_ID, "project_id": OTHER_PROJECT_ID},
        # The function may act on the project; CBR refuses the credentials for it.
        env={"ALLOWED_PROJECT_IDS": f"{PROJECT_ID},{OTHER_PROJECT_ID}"},
    ),
    Scenario(
        "500-9998-auth-once",
        lambda w: w.fault(status=500, body=cbr_error("BackupService.9998", "authentication failed")),
        Expect(check=_cbr_posts(2)),
    ),
    Scenario(
        "500-9998-auth-twice",
        lambda w: w.fault(status=500, body=cbr_error("BackupService.9998", "authentication failed"), times=2),
        Expect(outcomes=("failed",), checkpoints=0, code="BackupService.9998", check=_cbr_posts(2)),
    ),
    Scenario(
        "401-apigw-0307-token-expired",
        _setup_token_expiry,
        Expect(check=_all(_cbr_posts(2), _token_requests(2))),
        auth="token",
    ),
    Scenario(
        "iam-503-once",
        lambda w: w.fault(path_suffix="/v3/auth/tokens", status=503, body={"error": {"code": 503}}),
        Expect(check=_all(_cbr_posts(1), _token_requests(2))),
        auth="token",
    ),
    Scenario(
        "iam-connection-dropped",
        lambda w: w.fault(path_suffix="/v3/auth/tokens", drop="before"),
        Expect(check=_all(_cbr_posts(1), _token_requests(2))),
        auth="token",
    ),
    Scenario(
        "secret-read-500-once",
        lambda w: w.aws.rules.append(
            Rule(
                target=".GetSecretValue", status=500, body={"__type": "InternalServiceError", "message": "x"}
            )
        ),
        Expect(check=_all(_cbr_posts(1), _token_requests(1))),
        auth="token",
    ),
    Scenario(
        "502-gateway",
        lambda w: w.fault(status=502, body=gateway_error("APIGW.0201", "Backend unavailable")),
        Expect(check=_cbr_posts(2)),
    ),
    Scenario(
        "504-gateway-after-create",
        lambda w: w.cbr.rules.append(
            Rule(
                path="/checkpoints",
                status=504,
                body=gateway_error("APIGW.0201", "Backend timeout"),
                forward=True,
            )
        ),
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "500-9910-unknown-once",
        lambda w: w.fault(status=500, body=cbr_error("BackupService.9910", "unknown exception")),
        Expect(check=_cbr_posts(2)),
    ),
    Scenario("drop-before-create", lambda w: w.fault(drop="before"), Expect(check=_cbr_posts(2))),
    Scenario("drop-after-create", lambda w: w.fault(drop="after"), Expect(check=_cbr_posts(1))),
    Scenario(
        "drop-after-create-no-time-left",
        lambda w: w.fault(drop="after", delay=AT_THE_MARGIN),
        Expect(returns=1, check=_cbr_posts(1)),
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "drop-after-create-templated-name",
        lambda w: w.fault(drop="after", delay=AT_THE_MARGIN),
        Expect(returns=1, check=_cbr_posts(1)),
        request={"vault_id": VAULT_ID, "resources": [RESOURCE_ID], "name": "manual-{time:%H%M%S%f}"},
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "read-timeout-after-create",
        lambda w: w.fault(delay=3.0),
        Expect(check=_cbr_posts(1)),
        env={"CBR_READ_TIMEOUT_SECONDS": "0.5"},
    ),
    Scenario(
        "malformed-200-after-create",
        lambda w: w.cbr.rules.append(
            Rule(path="/checkpoints", status=200, body=b"<html>upstream glitch</html>", forward=True)
        ),
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "reconcile-list-backups-500",
        _setup_reconcile_list_fails,
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "reconcile-list-backups-403-once",
        _setup_reconcile_list_refused,
        Expect(returns=None, check=_cbr_posts(1)),
    ),
    Scenario(
        "reconcile-show-checkpoint-404",
        _setup_reconcile_show_fails,
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "200-skipped-resources",
        _setup_skip,
        Expect(check=_skipped_reported),
        request={"vault_id": SKIP_VAULT_ID},
    ),
    Scenario(
        "lambda-timeout-mid-call",
        _setup_lambda_timeout,
        Expect(returns=1, check=_cbr_posts(1)),
        timeout=NO_TIME_TO_RETRY,
        abandon_first=True,
    ),
    Scenario(
        "putevents-throttled-once",
        lambda w: w.aws.rules.append(
            Rule(target=".PutEvents", status=200, body=put_events_failing("ThrottlingException"))
        ),
        Expect(),
    ),
    Scenario("putevents-throttled-exhausted", _setup_putevents_exhausted, Expect(returns=1)),
    Scenario(
        "putevents-call-throttled-once",
        lambda w: w.aws.rules.append(
            Rule(
                target=".PutEvents",
                status=400,
                body={"__type": "ThrottlingException", "message": "Rate exceeded"},
            )
        ),
        Expect(check=_aws_calls(".PutEvents", 2)),
    ),
    Scenario(
        "putevents-500-once",
        lambda w: w.aws.rules.append(Rule(target=".PutEvents", status=500, body=EVENTS_500)),
        Expect(check=_aws_calls(".PutEvents", 2)),
    ),
    Scenario("putevents-500-exhausted", _setup_putevents_5xx, Expect(returns=1)),
    Scenario(
        "putevents-bus-missing-first",
        _no_setup,
        Expect(returns=1),
        first_env={"EVENT_BUS_NAME": "no-such-bus"},
    ),
    Scenario(
        "ledger-claim-500",
        lambda w: w.aws.rules.append(Rule(target=".PutItem", when=_is_claim, status=500, body=DYNAMODB_500)),
        Expect(check=_cbr_posts(1)),
    ),
    Scenario(
        "ledger-claim-throttled",
        lambda w: w.aws.rules.append(
            Rule(target=".PutItem", when=_is_claim, status=400, body=DYNAMODB_THROTTLED, times=2)
        ),
        Expect(check=_all(_cbr_posts(1), _aws_calls(".PutItem", 4))),
    ),
    Scenario(
        "ledger-complete-throttled",
        lambda w: w.aws.rules.append(
            Rule(target=".UpdateItem", when=_is_completion, status=400, body=DYNAMODB_THROTTLED)
        ),
        Expect(check=_all(_cbr_posts(1), _aws_calls(".UpdateItem", 2))),
    ),
    Scenario(
        "ledger-claim-throttled-no-time-left",
        lambda w: w.aws.rules.append(
            Rule(target=".PutItem", when=_is_claim, status=400, body=DYNAMODB_THROTTLED, delay=AT_THE_MARGIN)
        ),
        Expect(returns=1, check=_cbr_posts(1)),
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "watch-schedule-throttled-once",
        lambda w: w.aws.rules.append(
            Rule(target=".SendMessageBatch", status=200, body=send_message_batch_failing("RequestThrottled"))
        ),
        Expect(check=_all(_cbr_posts(1), _aws_calls(".SendMessageBatch", 2))),
        watch=True,
    ),
    Scenario(
        "ledger-complete-500",
        lambda w: w.aws.rules.append(
            Rule(
                target=".UpdateItem", when=_is_completion, status=500, body=DYNAMODB_500, delay=AT_THE_MARGIN
            )
        ),
        # CBR has acted: the outcome is published though the ledger did not store it.
        Expect(check=_cbr_posts(1)),
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "duplicate-delivery-concurrent",
        _setup_duplicate,
        Expect(returns=1, check=_cbr_posts(1)),
        copies=2,
    ),
    Scenario(
        "many-one-busy-forever",
        lambda w: w.emulator.mark_busy(RESOURCE_ID, mode="reject"),
        Expect(outcomes=("created", "pending"), checkpoints=1, returns=1 + MAX_REDELIVERIES),
        request={
            "requests": [{"vault_id": SECOND_VAULT_ID}, {"vault_id": VAULT_ID, "resources": [RESOURCE_ID]}]
        },
        keys=2,
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "selection-listing-throttled",
        _setup_listing_throttled,
        # The throttle also slows this environment's CBR calls: a create may not start in time and go back.
        Expect(outcomes=("created", "created"), checkpoints=2, returns=None, check=_expanded(2)),
        request=SELECTION,
        keys=2,
    ),
    Scenario(
        "selection-second-listing-500-no-time-left",
        _setup_second_listing_fails,
        Expect(outcomes=("created", "created"), checkpoints=2, returns=1, check=_expanded(2)),
        request={"select": SELECTION["select"] | {"object_type": "server"}},
        keys=2,
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "selection-sendmessagebatch-partial",
        _setup_send_partial,
        Expect(outcomes=("created", "created"), checkpoints=2, check=_expanded(2)),
        request=SELECTION,
        keys=2,
        env={"FANOUT_INLINE_MAX": "1"},
    ),
    Scenario(
        "selection-sendmessagebatch-exhausted",
        _setup_send_exhausted,
        Expect(outcomes=("created", "created"), checkpoints=2, returns=1, check=_expanded(2)),
        request=SELECTION,
        keys=2,
        env={"FANOUT_INLINE_MAX": "1"},
    ),
    Scenario(
        "selection-trigger-retried-mid-expansion",
        _setup_lambda_timeout_mid_expansion,
        Expect(outcomes=("created", "created"), checkpoints=2, returns=1, check=_expanded(2)),
        request=SELECTION,
        keys=2,
        timeout=NO_TIME_TO_RETRY,
        abandon_first=True,
    ),
    Scenario(
        "invalid-payload",
        _no_setup,
        Expect(outcomes=("rejected",), checkpoints=0, fields=("vault_id", "incremntal"), check=_nothing_sent),
        request={"vault_id": "not-a-uuid", "incremntal": False},
    ),
    Scenario(
        "project-not-allowed",
        _no_setup,
        Expect(outcomes=("rejected",), checkpoints=0, fields=("project_id",), check=_nothing_sent),
        request={"vault_id": VAULT_ID, "project_id": OTHER_PROJECT_ID},
    ),
]
