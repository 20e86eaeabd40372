"""The composition root: settings -> clients -> service and publisher, once per execution environment."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from cbr_checkpointer.aws import AwsCredentials, AwsJsonClient, aws_json_client
from cbr_checkpointer.cbr import AkSkCredentials, CbrClient, CredentialsProvider, StaticCredentials
from cbr_checkpointer.completion import CompletionService, WatchQueue
from cbr_checkpointer.credentials import SecretCredentials, SecretsExtension
from cbr_checkpointer.ledger import DynamoDBLedger, Ledger, MemoryLedger
from cbr_checkpointer.publisher import EventPublisher
from cbr_checkpointer.service import CheckpointService
from cbr_checkpointer.settings import ConfigurationError, Settings, get_settings
from cbr_checkpointer.triggers import RequestDefaults


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    defaults: RequestDefaults
    service: CheckpointService
    publisher: EventPublisher
    clients: tuple[CbrClient | AwsJsonClient | SecretsExtension, ...]
    # Follows created checkpoints to their end; None when WATCH_QUEUE_URL is not set.
    completion: CompletionService | None = None

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _aws_credentials(settings: Settings) -> AwsCredentials:
    if settings.aws_access_key_id is None or settings.aws_secret_access_key is None:
        raise ConfigurationError(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are required (Lambda sets them)"
        )
    return AwsCredentials(
        access_key_id=settings.aws_access_key_id.get_secret_value(),
        secret_access_key=settings.aws_secret_access_key,
        session_token=settings.aws_session_token,
    )


def _huawei_credentials(
    settings: Settings, aws: AwsCredentials
) -> tuple[CredentialsProvider, list[AwsJsonClient | SecretsExtension]]:
    if settings.huawei_ak is not None and settings.huawei_sk is not None:
        static = AkSkCredentials(
            ak=settings.huawei_ak.get_secret_value(),
            sk=settings.huawei_sk,
            security_token=settings.huawei_security_token,
        )
        return StaticCredentials(static), []
    if settings.credentials_secret:
        secrets = aws_json_client(
            "secretsmanager", settings.aws_endpoint("secretsmanager"), settings.aws_region, aws
        )
        extension = SecretsExtension(settings.secrets_extension_port, settings.aws_session_token)
        provider = SecretCredentials(secrets, settings.credentials_secret, extension=extension)
        return provider, [secrets, extension]
    raise ConfigurationError(
        "no Huawei credentials: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK, or CBR_CREDENTIALS_SECRET"
    )


def _ledger(settings: Settings, aws: AwsCredentials) -> tuple[Ledger, list[AwsJsonClient]]:
    if settings.idempotency_table == "memory":
        return MemoryLedger(ttl_seconds=settings.idempotency_ttl_seconds), []
    dynamodb = aws_json_client("dynamodb", settings.aws_endpoint("dynamodb"), settings.aws_region, aws)
    ledger = DynamoDBLedger(
        dynamodb, settings.idempotency_table, ttl_seconds=settings.idempotency_ttl_seconds
    )
    return ledger, [dynamodb]


def build_runtime(settings: Settings) -> Runtime:
    aws = _aws_credentials(settings)
    credentials, credential_clients = _huawei_credentials(settings, aws)
    ledger, ledger_clients = _ledger(settings, aws)
    cbr = CbrClient(
        settings.cbr_endpoint,
        credentials,
        iam_endpoint=settings.iam_endpoint,
        max_connections=settings.max_concurrency,
        read_timeout=settings.cbr_read_timeout_seconds,
    )
    events = aws_json_client("events", settings.aws_endpoint("events"), settings.aws_region, aws)
    completion, completion_clients = _completion(settings, aws, cbr, ledger)
    return Runtime(
        settings=settings,
        defaults=RequestDefaults(
            project_id=settings.project_id,
            default_vault_id=settings.default_vault_id,
            dry_run=settings.dry_run,
            allowed_project_ids=settings.allowed_project_ids,
            # Requests go to the configured region's endpoint: the only one a request may name.
            regions=frozenset({settings.cbr_region}) if settings.cbr_region else frozenset(),
        ),
        service=CheckpointService(cbr, ledger),
        publisher=EventPublisher(events, source=settings.event_source, bus_name=settings.event_bus_name),
        clients=(cbr, events, *credential_clients, *ledger_clients, *completion_clients),
        completion=completion,
    )


def _completion(
    settings: Settings, aws: AwsCredentials, cbr: CbrClient, ledger: Ledger
) -> tuple[CompletionService | None, list[AwsJsonClient]]:
    if not settings.watch_queue_url:
        return None, []
    sqs = aws_json_client("sqs", settings.aws_endpoint("sqs"), settings.aws_region, aws)
    completion = CompletionService(
        cbr,
        ledger,
        WatchQueue(sqs, settings.watch_queue_url),
        max_age_seconds=settings.watch_max_age_seconds,
    )
    return completion, [sqs]


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The runtime of this execution environment, built on first use from the environment."""
    global _runtime  # noqa: PLW0603 - one per execution environment by design
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime(get_settings())
        return _runtime


def reset_runtime() -> None:
    """Forget the runtime and settings (tests and local runs that change the environment)."""
    global _runtime  # noqa: PLW0603
    with _runtime_lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = None
        get_settings.cache_clear()
