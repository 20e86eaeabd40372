"""The composition root: settings -> adapters plugged into the ports -> the application, once per
execution environment."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

from cbr_checkpointer.application import Application
from cbr_checkpointer.aws import AwsCredentials, AwsJsonClient, aws_json_client
from cbr_checkpointer.cbr import (
    AkSkCredentials,
    CbrClient,
    CbrError,
    CredentialsProvider,
    RegionalCbr,
    StaticCredentials,
)
from cbr_checkpointer.completion import CompletionService
from cbr_checkpointer.credentials import EXTENSION_RETRY, SecretCredentials, SecretsExtension
from cbr_checkpointer.domain import BackupRequest, ErrorInfo, Outcome, WorkItem
from cbr_checkpointer.fanout import FanoutService
from cbr_checkpointer.ledger import DynamoDBLedger, MemoryLedger
from cbr_checkpointer.models import CheckpointCreate, CreateCheckpointResponse, VaultBackupReq
from cbr_checkpointer.ports import Clock, Ledger, NoObserver, Observer, SystemClock
from cbr_checkpointer.publisher import EventPublisher
from cbr_checkpointer.rate import AdaptiveLimiter
from cbr_checkpointer.request_queue import SqsRequestQueue
from cbr_checkpointer.retry import Deadline, Retrier, RetryPolicy
from cbr_checkpointer.service import CheckpointService
from cbr_checkpointer.settings import ConfigurationError, Settings, get_settings
from cbr_checkpointer.triggers import RequestDefaults, watch_queue_arn
from cbr_checkpointer.values import value
from cbr_checkpointer.watch_queue import SqsWatchQueue


@value
class Runtime:
    settings: Settings
    defaults: RequestDefaults
    application: Application
    clock: Clock
    # Records from this queue are completion checks; a watch-shaped body from any other is Rejected.
    watch_queue_arn: str | None
    clients: tuple[RegionalCbr | AwsJsonClient | SecretsExtension, ...]
    # The current invocation's deadline, which bounds every retry; the handler sets it per invocation.
    deadline: Deadline
    # Follows created checkpoints to their end; None when WATCH_QUEUE_URL is not set.
    completion: CompletionService | None = None

    def open(self) -> None:
        """Make the HTTP clients that every invocation uses (each one's pool; the shared TLS context)."""
        for client in self.clients:
            if isinstance(client, RegionalCbr | AwsJsonClient):
                client.open()

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
    settings: Settings, aws: AwsCredentials, retry: Retrier
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
            "secretsmanager", settings.aws_endpoint("secretsmanager"), settings.aws_region, aws, retry=retry
        )
        extension = SecretsExtension(
            settings.secrets_extension_port,
            settings.aws_session_token,
            retry=Retrier(EXTENSION_RETRY, deadline=retry.deadline),
        )
        provider = SecretCredentials(secrets, settings.credentials_secret, extension=extension)
        return provider, [secrets, extension]
    raise ConfigurationError(
        "no Huawei credentials: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK, or CBR_CREDENTIALS_SECRET"
    )


def _ledger(settings: Settings, aws: AwsCredentials, retry: Retrier) -> tuple[Ledger, list[AwsJsonClient]]:
    if settings.idempotency_table == "memory":
        return MemoryLedger(ttl_seconds=settings.idempotency_ttl_seconds), []
    dynamodb = aws_json_client(
        "dynamodb", settings.aws_endpoint("dynamodb"), settings.aws_region, aws, retry=retry
    )
    ledger = DynamoDBLedger(
        dynamodb, settings.idempotency_table, ttl_seconds=settings.idempotency_ttl_seconds
    )
    return ledger, [dynamodb]


def build_runtime(settings: Settings, *, observer: Observer | None = None) -> Runtime:
    observer = observer or NoObserver()
    clock = SystemClock()
    aws = _aws_credentials(settings)
    # One policy for every retry: CBR creates, every AWS call, the entries a batch left behind.
    policy = RetryPolicy()
    deadline = Deadline()
    retry = Retrier(policy, deadline=deadline)
    credentials, credential_clients = _huawei_credentials(settings, aws, retry)
    ledger, ledger_clients = _ledger(settings, aws, retry)
    cbr = _regional_cbr(settings, credentials)
    events = aws_json_client("events", settings.aws_endpoint("events"), settings.aws_region, aws, retry=retry)
    completion, completion_clients = _completion(settings, aws, cbr, ledger, clock=clock, retry=retry)
    fanout, fanout_clients = _fanout(settings, aws, cbr, policy, clock=clock, retry=retry)
    application = Application(
        CheckpointService(cbr, ledger, retry=policy, clock=clock, observer=observer),
        EventPublisher(events, source=settings.event_source, bus_name=settings.event_bus_name, retry=retry),
        completion,
        fanout=fanout,
        max_workers=settings.max_concurrency,
        observer=observer,
    )
    return Runtime(
        settings=settings,
        defaults=RequestDefaults(
            project_id=settings.project_id,
            default_vault_id=settings.default_vault_id,
            dry_run=settings.dry_run,
            allowed_project_ids=settings.allowed_project_ids,
            regions=settings.request_regions(),
            region=settings.cbr_region,
        ),
        application=application,
        clock=clock,
        watch_queue_arn=_watch_queue_arn(settings),
        clients=(cbr, events, *credential_clients, *ledger_clients, *completion_clients, *fanout_clients),
        deadline=deadline,
        completion=completion,
    )


def _regional_cbr(settings: Settings, credentials: CredentialsProvider) -> RegionalCbr:
    """CBR in every region: the configured endpoint, and a client per other region as requests name it,
    each with its own connection pool, call limiter and IAM endpoint (CBR limits calls per region)."""

    def client(endpoint: str, iam_endpoint: str) -> CbrClient:
        return CbrClient(
            endpoint,
            credentials,
            iam_endpoint=iam_endpoint,
            max_connections=settings.max_concurrency,
            read_timeout=settings.cbr_read_timeout_seconds,
            limiter=AdaptiveLimiter(settings.max_concurrency),
        )

    def connect(region: str) -> CbrClient:
        endpoints = settings.region_endpoints.get(region)
        if endpoints is None:
            message = f"region {region!r} is not one this function can reach"
            raise CbrError(ErrorInfo("validation", message, code="UnknownRegion"))
        return client(endpoints.cbr, endpoints.iam)

    return RegionalCbr(
        client(settings.cbr_endpoint, settings.iam_endpoint),
        default_region=settings.cbr_region,
        connect=connect,
    )


def _watch_queue_arn(settings: Settings) -> str | None:
    if not settings.watch_queue_url:
        return None
    arn = watch_queue_arn(settings.watch_queue_url, settings.aws_region)
    if arn is None:
        raise ConfigurationError(
            "WATCH_QUEUE_URL must be an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"
        )
    return arn


def _completion(
    settings: Settings, aws: AwsCredentials, cbr: RegionalCbr, ledger: Ledger, *, clock: Clock, retry: Retrier
) -> tuple[CompletionService | None, list[AwsJsonClient]]:
    if not settings.watch_queue_url:
        return None, []
    sqs = aws_json_client("sqs", settings.aws_endpoint("sqs"), settings.aws_region, aws, retry=retry)
    completion = CompletionService(
        cbr,
        ledger,
        SqsWatchQueue(sqs, settings.watch_queue_url, retry=retry),
        max_age_seconds=settings.watch_max_age_seconds,
        clock=clock,
    )
    return completion, [sqs]


def _fanout(
    settings: Settings,
    aws: AwsCredentials,
    cbr: RegionalCbr,
    policy: RetryPolicy,
    *,
    clock: Clock,
    retry: Retrier,
) -> tuple[FanoutService, list[AwsJsonClient]]:
    if not settings.request_queue_url:
        return FanoutService(cbr, None, inline_max=settings.fanout_inline_max, retry=policy, clock=clock), []
    sqs = aws_json_client("sqs", settings.aws_endpoint("sqs"), settings.aws_region, aws, retry=retry)
    queue = SqsRequestQueue(sqs, settings.request_queue_url, retry=retry)
    fanout = FanoutService(cbr, queue, inline_max=settings.fanout_inline_max, retry=policy, clock=clock)
    return fanout, [sqs]


class Observers:
    """Every observer of a live list, each told of everything (the list may change between calls)."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self._observers = observers

    def request_started(self, item: WorkItem) -> None:
        for observer in tuple(self._observers):
            observer.request_started(item)

    def request_retried(
        self, item: BackupRequest, attempt: int, delay_seconds: float, error: ErrorInfo
    ) -> None:
        for observer in tuple(self._observers):
            observer.request_retried(item, attempt, delay_seconds, error)

    def request_finished(self, item: WorkItem, result: Outcome | BaseException) -> None:
        for observer in tuple(self._observers):
            observer.request_finished(item, result)

    def events_published(self, published: Sequence[Outcome], unpublished: Sequence[Outcome]) -> None:
        for observer in tuple(self._observers):
            observer.events_published(published, unpublished)

    def invocation_failed(self, error: BaseException) -> None:
        for observer in tuple(self._observers):
            observer.invocation_failed(error)


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()
_observers: list[Observer] = []
# What the runtime of this process reports to: every observer added by `observing`.
process_observer: Observer = Observers(_observers)


def get_runtime() -> Runtime:
    """The runtime of this execution environment, built on first use from the environment."""
    global _runtime  # noqa: PLW0603 - one per execution environment by design
    with _runtime_lock:
        if _runtime is None:
            _runtime = build_runtime(get_settings(), observer=process_observer)
        return _runtime


def build_runtime_if_configured() -> None:
    """Build the runtime now when the environment describes one, as it does in Lambda.

    Called at import of the handler, so that in Lambda the settings, the TLS context, the HTTP clients
    and the validators of the CBR bodies are made during init, which runs with more CPU than an
    invocation gets. Where the environment is set later (tests, local runs) nothing is built, and the
    first invocation builds what it needs or names what is missing.
    """
    try:
        runtime = get_runtime()
    except ConfigurationError:
        return
    runtime.open()
    # The body models defer their build to their first use so that importing them stays cheap; every
    # invocation that creates a checkpoint validates with these three.
    for model in (VaultBackupReq, CheckpointCreate, CreateCheckpointResponse):
        model.model_rebuild()


@contextlib.contextmanager
def observing(observer: Observer) -> Iterator[None]:
    """Tell `observer` of every invocation run by this process's runtime while the block runs."""
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)


def reset_runtime() -> None:
    """Forget the runtime and settings (tests and local runs that change the environment)."""
    global _runtime  # noqa: PLW0603
    with _runtime_lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = None
        get_settings.cache_clear()
