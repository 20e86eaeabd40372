"""A whole local world on loopback: the CBR emulator, a moto server, an event bus with a capture queue.

`make run` and the integration tests both use it, so what a person sees is what the tests assert.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx2 as httpx
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from cbr_checkpointer.aws import AwsCredentials, AwsJsonClient, aws_json_client
from cbr_checkpointer.local_context import LocalContext
from cbr_emulator import Emulator
from devtools.records import ACCOUNT, record_from_message

PROJECT_ID = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
SECOND_VAULT_ID = "7d2c9a10-5e3b-4f6a-8c1d-2e4f6a8b0c12"
RESOURCE_ID = "94eba8b2-acc9-4d82-badc-127144cc5526"
# A vault that events/selection.json does not select (its env tag is neither prod nor staging).
UNSELECTED_VAULT_ID = "a1d3c5e7-2b4d-4f60-8a9c-0b1d2f3e4a5c"
# The tags of the sandbox's vaults: events/selection.json selects backup=nightly and env prod or staging.
VAULT_TAGS = {
    VAULT_ID: {"backup": "nightly", "env": "prod"},
    SECOND_VAULT_ID: {"backup": "nightly", "env": "staging"},
    UNSELECTED_VAULT_ID: {"backup": "nightly", "env": "dev"},
}
BUS_NAME = "cbr-checkpointer"
EVENT_SOURCE = "cbr.checkpointer"
REGION = "us-east-1"
HUAWEI_AK = "EMULATORACCESSKEY000"
HUAWEI_SK = "emulator-secret-key-never-logged"
IAM_USER = ("ops", "emulator-password-never-logged", "acme")
# Set by one auth mode and removed by the other, so switching modes never leaves the first one active.
AUTH_VARIABLES = frozenset({"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "CBR_CREDENTIALS_SECRET"})
WATCH_QUEUE = "cbr-checkpointer-watch"
REQUEST_QUEUE = "cbr-checkpointer-requests"
WATCH_DEAD_LETTER_QUEUE = "cbr-checkpointer-watch-dlq"
# As template.yaml: a watch message that failed this many receives goes to the watch DLQ.
WATCH_MAX_RECEIVES = 5
# How long `make run` lets a backup take in the emulator, with Sandbox(watch=True).
WATCH_BACKUP_SECONDS = 0.5
AWS_TEST_CREDENTIALS = AwsCredentials(
    access_key_id="AKIAIOSFODNN7EXAMPLE",
    secret_access_key=SecretStr("moto-secret-never-logged"),
    session_token=None,
)


class Sandbox:
    """Starts the emulator and moto on free loopback ports; `configured()` points the function at them.

    With `watch=True` the function also follows each checkpoint to its end: `environment` sets
    WATCH_QUEUE_URL, the emulator finishes backups after `backup_duration` seconds (default
    WATCH_BACKUP_SECONDS), and `follow_completion` runs the checks. Without it, completion is not
    followed unless a test passes `WATCH_QUEUE_URL=sandbox.watch_queue_url` to `configured()`.
    """

    def __init__(
        self,
        *,
        auth: Literal["aksk", "token"] = "aksk",
        watch: bool = False,
        backup_duration: float | None = None,
    ) -> None:
        self.auth = auth
        self.watch = watch
        self.emulator = Emulator(
            project_id=PROJECT_ID,
            ak=HUAWEI_AK,
            sk=HUAWEI_SK,
            user_name=IAM_USER[0],
            password=IAM_USER[1],
            domain_name=IAM_USER[2],
            backup_duration=WATCH_BACKUP_SECONDS if watch and backup_duration is None else backup_duration,
        )
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto_url = ""
        self.capture_queue_url = ""
        self.watch_queue_url = ""
        self.watch_dead_letter_queue_url = ""
        self.request_queue_url = ""
        self._clients: dict[str, AwsJsonClient] = {}

    def __enter__(self) -> Sandbox:
        self.emulator.start()
        self.emulator.add_vault(
            VAULT_ID,
            [{"id": RESOURCE_ID, "type": "OS::Nova::Server", "name": "ecs-web-1"}],
            tags=VAULT_TAGS[VAULT_ID],
        )
        self.emulator.add_vault(SECOND_VAULT_ID, [], name="vault-db", tags=VAULT_TAGS[SECOND_VAULT_ID])
        self.emulator.add_vault(
            UNSELECTED_VAULT_ID, [], name="vault-dev", tags=VAULT_TAGS[UNSELECTED_VAULT_ID]
        )
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        self.reset()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for client in self._clients.values():
            client.close()
        self._moto.stop()
        self.emulator.stop()

    def aws(self, service: str) -> AwsJsonClient:
        if service not in self._clients:
            self._clients[service] = aws_json_client(service, self.moto_url, REGION, AWS_TEST_CREDENTIALS)
        return self._clients[service]

    def reset(self) -> None:
        """Empty both servers and build the bus -> rule -> capture queue again."""
        httpx.post(f"{self.moto_url}/moto-api/reset", timeout=10).raise_for_status()
        self.emulator.reset()
        events, sqs = self.aws("events"), self.aws("sqs")
        events.call("CreateEventBus", {"Name": BUS_NAME})
        self.capture_queue_url = sqs.call("CreateQueue", {"QueueName": "published-events"})["QueueUrl"]
        queue_arn = sqs.call(
            "GetQueueAttributes", {"QueueUrl": self.capture_queue_url, "AttributeNames": ["QueueArn"]}
        )["Attributes"]["QueueArn"]
        events.call(
            "PutRule",
            {
                "Name": "capture-all",
                "EventBusName": BUS_NAME,
                "EventPattern": json.dumps({"source": [EVENT_SOURCE]}),
            },
        )
        events.call(
            "PutTargets",
            {
                "Rule": "capture-all",
                "EventBusName": BUS_NAME,
                "Targets": [{"Id": "capture", "Arn": queue_arn}],
            },
        )
        self.watch_dead_letter_queue_url = sqs.call("CreateQueue", {"QueueName": WATCH_DEAD_LETTER_QUEUE})[
            "QueueUrl"
        ]
        dead_letter_arn = sqs.call(
            "GetQueueAttributes",
            {"QueueUrl": self.watch_dead_letter_queue_url, "AttributeNames": ["QueueArn"]},
        )["Attributes"]["QueueArn"]
        redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": WATCH_MAX_RECEIVES}
        self.watch_queue_url = sqs.call(
            "CreateQueue",
            {"QueueName": WATCH_QUEUE, "Attributes": {"RedrivePolicy": json.dumps(redrive)}},
        )["QueueUrl"]
        self.request_queue_url = sqs.call("CreateQueue", {"QueueName": REQUEST_QUEUE})["QueueUrl"]

    def create_ledger_table(self) -> str:
        """A fresh DynamoDB ledger table in moto, shaped as template.yaml declares it."""
        table = f"ledger-{uuid.uuid4().hex[:8]}"
        self.aws("dynamodb").call(
            "CreateTable",
            {
                "TableName": table,
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        )
        return table

    @property
    def environment(self) -> dict[str, str]:
        env = {
            "CBR_ENDPOINT": self.emulator.base_url,
            "HUAWEICLOUD_SDK_IAM_ENDPOINT": self.emulator.base_url,
            "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT_ID,
            "DEFAULT_VAULT_ID": VAULT_ID,
            "EVENT_BUS_NAME": BUS_NAME,
            "EVENT_SOURCE": EVENT_SOURCE,
            "IDEMPOTENCY_TABLE": "memory",
            # Where a selection larger than FANOUT_INLINE_MAX sends its vaults; `run_request_queue`
            # delivers them to the function.
            "REQUEST_QUEUE_URL": self.request_queue_url,
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": AWS_TEST_CREDENTIALS.access_key_id,
            "AWS_SECRET_ACCESS_KEY": AWS_TEST_CREDENTIALS.secret_access_key.get_secret_value(),
            "POWERTOOLS_SERVICE_NAME": "cbr-checkpointer",
            "POWERTOOLS_METRICS_NAMESPACE": "CbrCheckpointer",
        }
        if self.watch:
            env["WATCH_QUEUE_URL"] = self.watch_queue_url
        if self.auth == "aksk":
            env |= {"HUAWEICLOUD_SDK_AK": HUAWEI_AK, "HUAWEICLOUD_SDK_SK": HUAWEI_SK}
        else:
            secret_id = "cbr-checkpointer/huawei"
            secret = {"user_name": IAM_USER[0], "password": IAM_USER[1], "domain_name": IAM_USER[2]}
            secrets = self.aws("secretsmanager")
            try:
                secrets.call("CreateSecret", {"Name": secret_id, "SecretString": json.dumps(secret)})
            except Exception:
                secrets.call("PutSecretValue", {"SecretId": secret_id, "SecretString": json.dumps(secret)})
            env["CBR_CREDENTIALS_SECRET"] = secret_id
        return env

    @contextmanager
    def configured(self, **overrides: str) -> Iterator[None]:
        """Point the function at this sandbox for the duration (environment + a fresh runtime)."""
        from cbr_checkpointer.runtime import reset_runtime

        wanted = self.environment | overrides
        saved = {name: os.environ.get(name) for name in wanted.keys() | AUTH_VARIABLES}
        for name in AUTH_VARIABLES - wanted.keys():
            os.environ.pop(name, None)
        os.environ.update(wanted)
        reset_runtime()
        try:
            yield
        finally:
            reset_runtime()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def published_events(self) -> list[dict[str, Any]]:
        """Drain the capture queue: every event the function put on the bus since the last drain."""
        sqs = self.aws("sqs")
        events: list[dict[str, Any]] = []
        for _ in range(100):
            answer = sqs.call(
                "ReceiveMessage",
                {"QueueUrl": self.capture_queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0},
            )
            messages = answer.get("Messages", [])
            if not messages:
                break
            events += [json.loads(message["Body"]) for message in messages]
            entries = [
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                for index, message in enumerate(messages)
            ]
            deleted = sqs.call("DeleteMessageBatch", {"QueueUrl": self.capture_queue_url, "Entries": entries})
            if deleted.get("Failed"):
                raise RuntimeError(f"the capture queue kept messages: {deleted['Failed']}")
        return events

    def captured_events(self) -> list[dict[str, Any]]:
        """Every event on the capture queue, read from moto's queue without receiving or deleting any: for
        a run that published thousands, which `published_events` would take minutes to drain (moto looks
        through the whole queue for each message it hands out)."""
        queue = self._moto_queue(self.capture_queue_url)
        return [json.loads(message.body) for message in list(queue._messages)]

    # -- following checkpoints to their end ---------------------------------------------------------

    def follow_completion(
        self,
        handler: Callable[[dict[str, Any], Any], Any],
        context_factory: Callable[[], Any] = LocalContext,
        *,
        time_scale: float = 0.002,
        timeout: float = 60.0,
    ) -> list[dict[str, Any]]:
        """Run the completion checks the function scheduled until none is left; the events they published.

        Each round takes every message on the watch queue, as the SQS event source would, and hands them
        to `handler` in batches of 10 (the template's BatchSize) with a fresh `context_factory()`.
        Time is compressed: a message's DelaySeconds is waited `time_scale` times as long (30 s ->
        60 ms), and moto delivers it at once. Records the handler reports in `batchItemFailures` become
        visible again at once (the queue's redrive policy moves one to the watch DLQ after
        WATCH_MAX_RECEIVES receives); the others are deleted. Call it after the first invocation, with
        WATCH_QUEUE_URL set (`Sandbox(watch=True)`, or `configured(WATCH_QUEUE_URL=...)`). The events
        are drained from the capture queue, so call `published_events()` before it for the first ones.
        """
        events: list[dict[str, Any]] = []
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            delay = self._release_watch_messages()
            if delay is None:
                return events
            time.sleep(min(2.0, delay * time_scale))
            messages = self._receive(self.watch_queue_url)
            for start in range(0, len(messages), 10):
                batch = messages[start : start + 10]
                response = handler({"Records": [self._record(m) for m in batch]}, context_factory())
                failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
                for message in batch:
                    if message["MessageId"] in failed:
                        self._sqs_call(
                            "ChangeMessageVisibility", message, self.watch_queue_url, VisibilityTimeout=0
                        )
                    else:
                        self._sqs_call("DeleteMessage", message, self.watch_queue_url)
            events.extend(self.published_events())
        raise TimeoutError(f"completion checks still pending after {timeout} s")

    def request_messages(self) -> list[dict[str, Any]]:
        """The bodies of the messages waiting on the request queue; nothing is received or changed."""
        return [json.loads(message.body) for message in self._moto_queue(self.request_queue_url)._messages]

    def run_request_queue(
        self,
        handler: Callable[[dict[str, Any], Any], Any],
        context_factory: Callable[[], Any] = LocalContext,
        *,
        max_rounds: int = 100,
    ) -> None:
        """Deliver the request queue to `handler` as its SQS event source would, 10 records a batch, until
        it is empty (the events it publishes stay on the capture queue for `published_events`). A record
        the handler names in `batchItemFailures` is made visible again for the next round; the others
        are deleted."""
        for _ in range(max_rounds):
            messages = self._receive(self.request_queue_url)
            if not messages:
                return
            for start in range(0, len(messages), 10):
                batch = messages[start : start + 10]
                records = [self._record(message, REQUEST_QUEUE) for message in batch]
                response = handler({"Records": records}, context_factory())
                failed = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
                for message in batch:
                    if message["MessageId"] in failed:
                        self._sqs_call(
                            "ChangeMessageVisibility", message, self.request_queue_url, VisibilityTimeout=0
                        )
                    else:
                        self._sqs_call("DeleteMessage", message, self.request_queue_url)
        raise TimeoutError(f"the request queue still held messages after {max_rounds} rounds")

    def watch_messages(self) -> list[dict[str, Any]]:
        """The bodies of the messages on the watch queue (scheduled checks), each with the `DelaySeconds` it
        was sent with; nothing is received or changed."""
        queue = self._moto_queue(self.watch_queue_url)
        found = []
        for message in list(queue._messages):
            body = json.loads(message.body)
            # moto stamps the send and the end of the delay from its clock in the same call: their
            # difference is the DelaySeconds asked for, however long ago that was (a delay left would
            # shrink while a loaded machine gets to this line).
            delay = max(0.0, (message.delayed_until - message.sent_timestamp) / 1000)
            found.append(body | {"DelaySeconds": round(delay)})
        return found

    def take_watch_messages(self) -> list[dict[str, Any]]:
        """Receive and delete every message on the watch queue, delayed or not: what `watch_messages`
        shows, for a test that hands the checks to the handler itself."""
        found = self.watch_messages()
        self._release_watch_messages()
        for message in self._receive(self.watch_queue_url):
            self._sqs_call("DeleteMessage", message, self.watch_queue_url)
        return found

    def _release_watch_messages(self) -> float | None:
        """Make every message on the watch queue deliverable now; the longest delay that was left, or
        None when the queue is empty."""
        queue = self._moto_queue(self.watch_queue_url)
        messages = list(queue._messages)
        if not messages:
            return None
        now = time.time() * 1000
        longest: float = max(max(0.0, (message.delayed_until - now) / 1000) for message in messages)
        for message in messages:
            message.delayed_until = 0
        return longest

    @staticmethod
    def _moto_queue(queue_url: str) -> Any:
        """moto's own queue object (the server runs in this process): the only way to skip DelaySeconds."""
        from moto.sqs.models import sqs_backends

        account, name = urlsplit(queue_url).path.strip("/").split("/")
        return sqs_backends[account][REGION].queues[name]

    def _receive(self, queue_url: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            answer = self.aws("sqs").call(
                "ReceiveMessage",
                {
                    "QueueUrl": queue_url,
                    "MaxNumberOfMessages": 10,
                    "WaitTimeSeconds": 0,
                    "VisibilityTimeout": 60,
                    "AttributeNames": ["All"],
                },
            )
            page = answer.get("Messages", [])
            if not page:
                return messages
            messages.extend(page)

    def _sqs_call(self, operation: str, message: dict[str, Any], queue_url: str, **extra: Any) -> None:
        self.aws("sqs").call(
            operation, {"QueueUrl": queue_url, "ReceiptHandle": message["ReceiptHandle"], **extra}
        )

    def _record(self, message: dict[str, Any], queue: str = WATCH_QUEUE) -> dict[str, Any]:
        """An SQS message of `queue` as the Lambda event source hands it over."""
        return record_from_message(
            message, queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", region=REGION
        )
