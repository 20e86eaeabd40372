"""A local SQS event source mapping: warm execution environments polling a queue in moto, as Lambda's do.

Each execution environment is a process of its own. It imports the handler once (its init), then, until
it is told to stop, receives up to `batch_size` messages (the template's BatchSize of 10), hands them to
the handler as the Lambda SQS event with a fresh context, deletes the records the handler did not list in
`batchItemFailures` (DeleteMessageBatch) and leaves the listed ones on the queue: they come back after the
queue's visibility timeout, with their ApproximateReceiveCount one higher. A handler that raises hands
back the whole batch, as with Lambda. The queue's own redrive policy moves a message to its dead-letter
queue once it has been received maxReceiveCount times (moto does that on receive, as SQS does).

Lambda scales its pollers with the queue's depth up to the mapping's MaximumConcurrency; here the number
of environments is fixed and they are all warm before the first message is handed over. Batching windows
are not modelled: a receive from a full queue already brings a whole batch.

`EventSourceMapping.run()` is bounded: it returns once the queue holds no message (visible, in flight or
delayed) and every environment is idle, or when its time limit is reached.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from queue import Empty
from types import TracebackType
from typing import Any, Self

from pydantic import SecretStr

from cbr_checkpointer.aws import AwsCredentials, AwsJsonClient, aws_json_client
from cbr_checkpointer.local_context import LocalContext
from devtools.records import record_from_message

HANDLER_MODULE = "cbr_checkpointer.handler"
BATCH_SIZE = 10  # the template's BatchSize
FUNCTION_TIMEOUT = 120.0  # the template's function timeout
# Short polls, so that an environment sees the stop signal soon after the queue is drained.
WAIT_TIME_SECONDS = 1
# How long an environment may take to start (its imports and init) on a busy machine.
START_TIMEOUT = 120.0
POLL_INTERVAL = 0.25  # seconds between looks at the queue's depth while the mapping runs


@dataclass(frozen=True)
class MappingConfig:
    """Where the mapping polls and what the function's environments look like."""

    queue_url: str
    queue_arn: str
    endpoint: str  # the AWS endpoint (moto) the environments receive and delete through
    region: str
    # The function's environment variables (AWS credentials included), as Lambda would set them.
    function_environment: dict[str, str]
    environments: int = 4
    batch_size: int = BATCH_SIZE
    function_timeout: float = FUNCTION_TIMEOUT
    # Each environment's stdout and stderr (the function's logs) go to environment-<n>.log here;
    # None: they are discarded.
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.environments < 1:
            raise ValueError(f"environments must be at least 1, not {self.environments}")
        if not 1 <= self.batch_size <= 10:
            raise ValueError(f"batch_size must be 1-10 (SQS receives at most 10), not {self.batch_size}")
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if variable not in self.function_environment:
                raise ValueError(f"function_environment has no {variable}: the environments sign with it")


@dataclass(frozen=True)
class Invocation:
    """One batch handed to the handler by one environment."""

    environment: int
    started: float  # time.time() when the batch was received
    seconds: float  # the handler's duration
    message_ids: tuple[str, ...]  # the SQS message id of each record
    receive_counts: tuple[int, ...]  # ApproximateReceiveCount of each record
    handed_back: int  # records left on the queue: listed in batchItemFailures, or all if it raised
    not_deleted: int = 0  # records the handler was done with but DeleteMessageBatch did not delete
    error: str | None = None  # what the handler raised, if it did

    @property
    def records(self) -> int:
        return len(self.receive_counts)


@dataclass
class MappingReport:
    """What the environments did, and whether the queue was drained within the time limit."""

    drained: bool
    seconds: float
    invocations: list[Invocation] = field(default_factory=list)
    # ReceiveMessage or DeleteMessageBatch calls that failed (the environment polled on)
    poll_errors: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        """Records handed to the handler, every delivery counted."""
        return sum(invocation.records for invocation in self.invocations)

    @property
    def handed_back(self) -> int:
        return sum(invocation.handed_back for invocation in self.invocations)

    @property
    def messages(self) -> set[str]:
        """The distinct messages handed to the handler."""
        return {message_id for invocation in self.invocations for message_id in invocation.message_ids}

    @property
    def redelivered(self) -> int:
        """Records that came to the handler again (ApproximateReceiveCount above 1)."""
        return sum(1 for invocation in self.invocations for count in invocation.receive_counts if count > 1)

    @property
    def not_deleted(self) -> int:
        return sum(invocation.not_deleted for invocation in self.invocations)

    @property
    def errors(self) -> list[str]:
        return [invocation.error for invocation in self.invocations if invocation.error is not None]


class EventSourceMapping:
    """`environments` warm execution environments of the function polling one queue.

    `with EventSourceMapping(config) as mapping:` starts them and waits until each has run its init;
    they receive nothing until `run()`, which returns when the queue is drained or at its time limit.
    Leaving the block stops them.
    """

    def __init__(self, config: MappingConfig) -> None:
        self.config = config
        self._context = multiprocessing.get_context("spawn")
        self._go = self._context.Event()
        self._stop = self._context.Event()
        self._messages: Queue[tuple[str, Any]] = self._context.Queue()
        self._processes: list[SpawnProcess] = []
        self._invocations: list[Invocation] = []
        self._poll_errors: list[str] = []

    def __enter__(self) -> Self:
        for index in range(self.config.environments):
            process = self._context.Process(
                target=_serve,
                args=(index, self.config, self._messages, self._go, self._stop),
                name=f"environment-{index}",
                daemon=True,
            )
            process.start()
            self._processes.append(process)
        ready = 0
        give_up = time.monotonic() + START_TIMEOUT
        while ready < self.config.environments:
            kind, payload = self._next_message(give_up, "to start")
            if kind == "ready":
                ready += 1
            elif kind == "failed":
                self._shut_down()
                raise RuntimeError(f"an execution environment failed during init:\n{payload}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._shut_down()

    def run(
        self,
        *,
        time_limit: float,
        on_poll: Callable[[float], None] | None = None,
    ) -> MappingReport:
        """Let the environments poll until the queue is drained and they are idle, or `time_limit`
        seconds have passed; `on_poll` is called with the seconds since the start at each look at the
        queue's depth."""
        sqs = _sqs_client(self.config)
        started = time.monotonic()
        give_up = started + time_limit
        self._go.set()
        drained = False
        try:
            while time.monotonic() < give_up:
                self._collect(until=time.monotonic() + POLL_INTERVAL)
                if on_poll is not None:
                    on_poll(time.monotonic() - started)
                if self._queue_is_empty(sqs):
                    drained = True
                    break
                if not any(process.is_alive() for process in self._processes):
                    break  # every environment crashed: their logs say why
            seconds = time.monotonic() - started
        finally:
            sqs.close()
            self._shut_down()
        return MappingReport(
            drained=drained,
            seconds=seconds,
            invocations=list(self._invocations),
            poll_errors=list(self._poll_errors),
        )

    def _queue_is_empty(self, sqs: AwsJsonClient) -> bool:
        """No message visible, in flight (received, not deleted) or delayed: every batch is done."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        answer = sqs.call("GetQueueAttributes", {"QueueUrl": self.config.queue_url, "AttributeNames": names})
        return all(int(answer["Attributes"].get(name, "0")) == 0 for name in names)

    def _collect(self, *, until: float) -> None:
        """Take in what the environments reported until `until` (time.monotonic())."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                kind, payload = self._messages.get(timeout=left)
            except Empty:
                return
            if kind == "invocation":
                self._invocations.append(payload)
            elif kind == "poll error":
                self._poll_errors.append(payload)

    def _next_message(self, give_up: float, waiting_for: str) -> tuple[str, Any]:
        while True:
            if not any(process.is_alive() for process in self._processes):
                self._shut_down()
                raise RuntimeError("every execution environment exited " + waiting_for)
            try:
                return self._messages.get(timeout=max(0.0, min(1.0, give_up - time.monotonic())))
            except Empty:
                if time.monotonic() >= give_up:
                    self._shut_down()
                    raise TimeoutError(
                        f"the execution environments took over {START_TIMEOUT} s {waiting_for}"
                    ) from None

    def _shut_down(self) -> None:
        """Stop the environments: each finishes the batch in hand (its function timeout bounds that)."""
        self._stop.set()
        self._go.set()
        give_up = time.monotonic() + self.config.function_timeout + 2 * WAIT_TIME_SECONDS + 5
        # Their reports are taken in while they finish: a process cannot end with reports unsent.
        while any(process.is_alive() for process in self._processes) and time.monotonic() < give_up:
            self._collect(until=time.monotonic() + 0.1)
        for process in self._processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
        self._collect(until=time.monotonic() + 0.1)
        self._processes.clear()


def _sqs_client(config: MappingConfig) -> AwsJsonClient:
    environment = config.function_environment
    credentials = AwsCredentials(
        access_key_id=environment["AWS_ACCESS_KEY_ID"],
        secret_access_key=SecretStr(environment["AWS_SECRET_ACCESS_KEY"]),
        session_token=None,
    )
    return aws_json_client("sqs", config.endpoint, config.region, credentials)


def _serve(
    index: int,
    config: MappingConfig,
    messages: Queue[tuple[str, Any]],
    go: Event,
    stop: Event,
) -> None:
    """One execution environment: init, then receive -> invoke -> delete until told to stop."""
    _redirect_output(None if config.log_dir is None else config.log_dir / f"environment-{index}.log")
    os.environ.update(config.function_environment)
    try:
        import importlib

        handler = importlib.import_module(HANDLER_MODULE).lambda_handler
        sqs = _sqs_client(config)
    except Exception:
        messages.put(("failed", traceback.format_exc()))
        return
    messages.put(("ready", index))
    go.wait()
    with contextlib.closing(sqs):
        while not stop.is_set():
            try:
                received = sqs.call(
                    "ReceiveMessage",
                    {
                        "QueueUrl": config.queue_url,
                        "MaxNumberOfMessages": config.batch_size,
                        "WaitTimeSeconds": WAIT_TIME_SECONDS,
                        "AttributeNames": ["All"],
                    },
                ).get("Messages", [])
                if received:
                    messages.put(("invocation", _invoke(index, config, handler, sqs, received)))
            except Exception as error:
                # The poller carries on, as Lambda's does; what it could not delete comes back after
                # the visibility timeout.
                messages.put(("poll error", f"{type(error).__name__}: {error}"))
                stop.wait(WAIT_TIME_SECONDS)
    messages.close()
    messages.join_thread()


def _invoke(
    index: int,
    config: MappingConfig,
    handler: Callable[[dict[str, Any], Any], Any],
    sqs: AwsJsonClient,
    received: list[dict[str, Any]],
) -> Invocation:
    """Hand one batch to the handler, then delete what it did not hand back."""
    started = time.time()
    records = [record_from_message(m, queue_arn=config.queue_arn, region=config.region) for m in received]
    error = None
    clock = time.monotonic()
    try:
        response = handler({"Records": records}, LocalContext(timeout_seconds=config.function_timeout))
        failed = {item.get("itemIdentifier") for item in (response or {}).get("batchItemFailures", [])}
        if not failed <= {record["messageId"] for record in records}:
            # Lambda treats a failure it cannot match to a record of the batch as the whole batch failing.
            error = f"batchItemFailures names records that are not in the batch: {sorted(map(str, failed))}"
            failed = {record["messageId"] for record in records}
    except Exception as raised:  # Lambda: an invocation error returns the whole batch
        error = f"{type(raised).__name__}: {raised}"
        failed = {record["messageId"] for record in records}
    seconds = time.monotonic() - clock
    done = [message for message in received if message["MessageId"] not in failed]
    not_deleted = 0
    if done:
        answer = sqs.call(
            "DeleteMessageBatch",
            {
                "QueueUrl": config.queue_url,
                "Entries": [
                    {"Id": str(number), "ReceiptHandle": message["ReceiptHandle"]}
                    for number, message in enumerate(done)
                ],
            },
        )
        not_deleted = len(answer.get("Failed", []))
    return Invocation(
        environment=index,
        started=started,
        seconds=seconds,
        message_ids=tuple(m["MessageId"] for m in received),
        receive_counts=tuple(
            int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")) for m in received
        ),
        handed_back=len(received) - len(done),
        not_deleted=not_deleted,
        error=error,
    )


def _redirect_output(path: Path | None) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to `path`, or discard them."""
    target = os.open(os.devnull if path is None else path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
