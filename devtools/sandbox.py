"""A whole local world on loopback: the CBR emulator, a moto server, an event bus with a capture queue.

`make run` and the integration tests both use it, so what a person sees is what the tests assert.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import httpx
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from cbr_checkpointer.aws import AwsCredentials, AwsJsonClient, aws_json_client
from cbr_emulator import Emulator

PROJECT_ID = "4229d7a4e1b64c4f9e7a2b1c3d5e6f70"
VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
SECOND_VAULT_ID = "7d2c9a10-5e3b-4f6a-8c1d-2e4f6a8b0c12"
RESOURCE_ID = "94eba8b2-acc9-4d82-badc-127144cc5526"
BUS_NAME = "cbr-checkpointer"
EVENT_SOURCE = "cbr.checkpointer"
REGION = "us-east-1"
HUAWEI_AK = "EMULATORACCESSKEY000"
HUAWEI_SK = "emulator-secret-key-never-logged"
IAM_USER = ("ops", "emulator-password-never-logged", "acme")
# Set by one auth mode and removed by the other, so switching modes never leaves the first one active.
AUTH_VARIABLES = frozenset({"HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "CBR_CREDENTIALS_SECRET"})
AWS_TEST_CREDENTIALS = AwsCredentials(
    access_key_id="AKIAIOSFODNN7EXAMPLE",
    secret_access_key=SecretStr("moto-secret-never-logged"),
    session_token=None,
)


@dataclass
class LocalContext:
    """The parts of the Lambda context object that the function and Powertools read."""

    timeout_seconds: float = 60.0
    function_name: str = "cbr-checkpointer"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:cbr-checkpointer"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


class Sandbox:
    """Starts the emulator and moto on free loopback ports; `configured()` points the function at them."""

    def __init__(self, *, auth: Literal["aksk", "token"] = "aksk") -> None:
        self.auth = auth
        self.emulator = Emulator(
            project_id=PROJECT_ID,
            ak=HUAWEI_AK,
            sk=HUAWEI_SK,
            user_name=IAM_USER[0],
            password=IAM_USER[1],
            domain_name=IAM_USER[2],
        )
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto_url = ""
        self.capture_queue_url = ""
        self._clients: dict[str, AwsJsonClient] = {}

    def __enter__(self) -> Sandbox:
        self.emulator.start()
        self.emulator.add_vault(
            VAULT_ID, [{"id": RESOURCE_ID, "type": "OS::Nova::Server", "name": "ecs-web-1"}]
        )
        self.emulator.add_vault(SECOND_VAULT_ID, [], name="vault-db")
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
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": AWS_TEST_CREDENTIALS.access_key_id,
            "AWS_SECRET_ACCESS_KEY": AWS_TEST_CREDENTIALS.secret_access_key.get_secret_value(),
            "POWERTOOLS_SERVICE_NAME": "cbr-checkpointer",
            "POWERTOOLS_METRICS_NAMESPACE": "CbrCheckpointer",
        }
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
            for message in messages:
                events.append(json.loads(message["Body"]))
                sqs.call(
                    "DeleteMessage",
                    {"QueueUrl": self.capture_queue_url, "ReceiptHandle": message["ReceiptHandle"]},
                )
        return events
