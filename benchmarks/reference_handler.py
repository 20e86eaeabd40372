"""The reference for `make bench`: what a user would write instead of cbr_checkpointer (not shipped).

The usual building blocks, used the way their documentation shows:

- the official Huawei SDK (`huaweicloudsdkcbr.CbrClient`, AK/SK `BasicCredentials`) for the create call;
- boto3 `events.put_events` for the outcome event;
- Powertools idempotency (`idempotent_function` + `DynamoDBPersistenceLayer`) around each create;
- Powertools Logger and Metrics, as the function under test has them.

Two handlers, two forms a user would write:

- `lambda_handler`, the straightforward one: Powertools `BatchProcessor` for SQS (records one after
  another, partial batch responses), one `put_events` per request as it finishes;
- `threaded_handler`, the best one: the requests of an invocation (the records of an SQS batch, or the
  items of a fan-out input) in a thread pool of MAX_CONCURRENCY threads (boto3 clients and the SDK's
  client are thread-safe), then one `put_events` per 10 outcomes, the API's limit per call.

It reads the same environment variables and accepts the same event shapes as the function (the
files in events/), with a plain, hand-written parser instead of the function's validation. Clients
are created at module level, as AWS advises ("initialize SDK clients outside of the handler") and
as `idempotent_function` requires for its persistence layer.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from huaweicloudsdkcbr.v1 import (
    CbrClient,
    CheckpointParam,
    CreateCheckpointRequest,
    Resource,
    VaultBackup,
    VaultBackupReq,
)
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkcore.http.http_config import HttpConfig

ENVELOPE = ("project_id", "idempotency_key", "scheduled_time", "schedule_arn", "dry_run")
TIME_PLACEHOLDER = re.compile(r"\{time:([^{}]+)\}")

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "cbr-checkpointer"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CbrCheckpointer"))
processor = BatchProcessor(event_type=EventType.SQS)

persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
idempotency = IdempotencyConfig(event_key_jmespath="idempotency_key", expires_after_seconds=15 * 24 * 3600)
events = boto3.client("events")  # AWS_ENDPOINT_URL / AWS_REGION from the environment, as boto3 reads them
BUS = os.environ.get("EVENT_BUS_NAME", "default")
SOURCE = os.environ.get("EVENT_SOURCE", "cbr.checkpointer")
PROJECT_ID = os.environ["HUAWEICLOUD_SDK_PROJECT_ID"]
MAX_WORKERS = int(os.environ.get("MAX_CONCURRENCY", "10"))
PUT_EVENTS_LIMIT = 10  # entries per PutEvents call


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cbr_client() -> CbrClient:
    endpoint = os.environ.get("CBR_ENDPOINT") or f"https://cbr.{os.environ['CBR_REGION']}.myhuaweicloud.com"
    config = HttpConfig.get_default_config()
    # The SDK keeps an explicit http:// endpoint as is; TLS checks are relaxed only for a loopback emulator.
    config.ignore_ssl_verification = _is_loopback(endpoint)
    credentials = BasicCredentials(
        os.environ["HUAWEICLOUD_SDK_AK"], os.environ["HUAWEICLOUD_SDK_SK"], PROJECT_ID
    )
    return (
        CbrClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoint(endpoint)
        .build()
    )


cbr = _cbr_client()


class TransientError(Exception):
    """CBR said "later" (throttled, busy, 5xx): the trigger should deliver the request again."""


# Powertools annotates idempotent_function as returning Any; what it returns keeps the wrapped signature.
idempotent: Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]] = idempotent_function(
    data_keyword_argument="request", config=idempotency, persistence_store=persistence
)


@idempotent
def create_checkpoint(request: dict[str, Any]) -> dict[str, Any]:
    """One create per idempotency key; Powertools stores the result (or nothing, when this raises)."""
    parameters = dict(request["parameters"])
    if "resource_details" in parameters:
        parameters["resource_details"] = [Resource(**detail) for detail in parameters["resource_details"]]
    body = VaultBackupReq(
        checkpoint=VaultBackup(vault_id=request["vault_id"], parameters=CheckpointParam(**parameters))
    )
    try:
        response = cbr.create_checkpoint(CreateCheckpointRequest(body=body))
    except exceptions.ClientRequestException as error:
        if error.status_code == 429 or error.status_code >= 500:
            raise TransientError(f"{error.error_code}: {error.error_msg}") from error
        return {"outcome": "failed", "error": {"code": error.error_code, "message": error.error_msg}}
    return {"outcome": "created", "checkpoint": response.to_dict()["checkpoint"]}


def _requests(payload: dict[str, Any], key: str, moment: datetime) -> list[dict[str, Any]]:
    """The payload's request(s) as {idempotency_key, vault_id, parameters}; names get `{time:...}` filled."""
    key = payload.get("idempotency_key", key)
    items = payload.get("requests")
    if not isinstance(items, list):
        return [_request(payload, key, moment)]
    envelope = {name: payload[name] for name in ENVELOPE if name in payload and name != "idempotency_key"}
    return [_request(envelope | item, f"{key}#{index}", moment) for index, item in enumerate(items)]


def _request(payload: dict[str, Any], key: str, moment: datetime) -> dict[str, Any]:
    if "checkpoint" in payload:
        vault_id = payload["checkpoint"]["vault_id"]
        parameters = dict(payload["checkpoint"].get("parameters") or {})
    else:
        vault_id = payload.get("vault_id") or os.environ["DEFAULT_VAULT_ID"]
        parameters = {k: v for k, v in payload.items() if k not in (*ENVELOPE, "vault_id")}
    if "name" in parameters:
        parameters["name"] = TIME_PLACEHOLDER.sub(lambda m: moment.strftime(m[1]), parameters["name"])
    return {"idempotency_key": key, "vault_id": vault_id, "parameters": parameters}


def _time(text: str | None) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else datetime.now(UTC)


def _entry(request: dict[str, Any], result: dict[str, Any]) -> dict[str, str]:
    detail_type = "CBR Checkpoint Created" if result["outcome"] == "created" else "CBR Checkpoint Failed"
    detail = {"version": "1", "project_id": PROJECT_ID, **request, **result}
    metrics.add_metric(name=f"Checkpoints{result['outcome'].title()}", unit=MetricUnit.Count, value=1)
    logger.info("request finished", extra={"idempotency_key": request["idempotency_key"], **result})
    return {"Source": SOURCE, "DetailType": detail_type, "Detail": json.dumps(detail), "EventBusName": BUS}


def _put_events(entries: list[dict[str, str]]) -> None:
    for start in range(0, len(entries), PUT_EVENTS_LIMIT):
        answer = events.put_events(Entries=entries[start : start + PUT_EVENTS_LIMIT])
        if answer.get("FailedEntryCount"):
            raise TransientError(f"{answer['FailedEntryCount']} event(s) not published")


def _publish(request: dict[str, Any], result: dict[str, Any]) -> None:
    _put_events([_entry(request, result)])


def _run(request: dict[str, Any]) -> None:
    _publish(request, create_checkpoint(request=request))


def _record_requests(body_text: str, message_id: str, sent_timestamp: str) -> list[dict[str, Any]]:
    body = json.loads(body_text)
    if body.get("Type") == "Notification":  # SNS → SQS
        body = json.loads(body["Message"])
    if "detail-type" in body:  # EventBridge → SQS
        body = body["detail"]
    sent = datetime.fromtimestamp(int(sent_timestamp) / 1000, UTC)
    return _requests(body, message_id, sent)


def record_handler(record: SQSRecord) -> None:
    for request in _record_requests(record.body, record.message_id, record.attributes.sent_timestamp):
        _run(request)


def _invocation_requests(event: dict[str, Any], context: LambdaContext) -> list[dict[str, Any]]:
    if event.get("source") == "aws.events" or "detail-type" in event:  # scheduled rule / EventBridge
        payload, key, moment = event.get("detail") or {}, event["id"], _time(event.get("time"))
    else:  # EventBridge Scheduler input or a direct invoke
        payload, moment = event, _time(event.get("scheduled_time"))
        key = event.get("idempotency_key") or (
            f"{event['schedule_arn']}@{event['scheduled_time']}"
            if "schedule_arn" in event
            else context.aws_request_id
        )
    return _requests(payload, key, moment)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True, raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    idempotency.register_lambda_context(context)
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    requests = _invocation_requests(event, context)
    for request in requests:
        _run(request)
    return {"outcomes": len(requests)}


pool = ThreadPoolExecutor(max_workers=MAX_WORKERS)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True, raise_on_empty_metrics=False)
def threaded_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The requests in threads, then their outcome events in as few PutEvents calls as the API allows."""
    idempotency.register_lambda_context(context)
    if "Records" not in event:
        requests = _invocation_requests(event, context)
        results = list(pool.map(lambda request: create_checkpoint(request=request), requests))
        _put_events([_entry(request, result) for request, result in zip(requests, results, strict=True)])
        return {"outcomes": len(requests)}

    def run_record(record: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        sent = record["attributes"]["SentTimestamp"]
        requests = _record_requests(record["body"], record["messageId"], sent)
        return [(request, create_checkpoint(request=request)) for request in requests]

    futures = [(record["messageId"], pool.submit(run_record, record)) for record in event["Records"]]
    finished, failures = [], []
    for message_id, future in futures:
        try:
            finished += future.result()
        except Exception:
            logger.exception("record failed", extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
    _put_events([_entry(request, result) for request, result in finished])
    return {"batchItemFailures": failures}
