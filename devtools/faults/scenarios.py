"""Every scenario of the fault matrix: what it scripts before the first delivery and the verdict it
must reach, with the few scenario-specific checks (counts of calls, what an event must carry).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from devtools.faults.model import (
    MAX_REDELIVERIES,
    NO_TIME_TO_RETRY,
    Expect,
    Row,
    Scenario,
    World,
)
from devtools.faults.proxy import FaultProxy, Rule
from devtools.sandbox import (
    PROJECT_ID,
    RESOURCE_ID,
    SECOND_VAULT_ID,
    VAULT_ID,
)


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
    from cbr_checkpointer.retry import RetryPolicy

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
    item = document.get("Item", {}) if isinstance(document, dict) else {}
    return bool(item.get("status", {}).get("S") == "completed")


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
    # BackupService.6217 for a moment, and a caller is expected to look again a few times.
    world.fault(drop="after")
    world.cbr.rules.append(
        Rule(
            method="GET",
            path="/checkpoints/",
            status=404,
            body=cbr_error("BackupService.6217", "The checkpoint does not exist."),
        )
    )


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
        # Handed back at once, not waited for: a pause is only ever followed by another attempt, so one
        # return and two creates in all (one per delivery) mean the first delivery did not sleep.
        Expect(returns=1, check=_cbr_posts(2)),
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
        lambda w: w.fault(drop="after"),
        Expect(returns=1, check=_cbr_posts(1)),
        timeout=NO_TIME_TO_RETRY,
    ),
    Scenario(
        "drop-after-create-templated-name",
        lambda w: w.fault(drop="after"),
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
        timeout=2.5,
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
            Rule(target=".PutItem", when=_is_completion, status=400, body=DYNAMODB_THROTTLED)
        ),
        Expect(check=_all(_cbr_posts(1), _aws_calls(".PutItem", 3))),
    ),
    Scenario(
        "ledger-claim-throttled-no-time-left",
        lambda w: w.aws.rules.append(
            Rule(target=".PutItem", when=_is_claim, status=400, body=DYNAMODB_THROTTLED)
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
            Rule(target=".PutItem", when=_is_completion, status=500, body=DYNAMODB_500)
        ),
        Expect(returns=1, check=_cbr_posts(1)),
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
