"""`make scale`: a fleet of warm execution environments against a rate-limited CBR, watched as it runs.

One request per vault goes onto an SQS request queue in moto (with a dead-letter queue after
maxReceiveCount receives, as the template declares it). A local event source mapping (devtools/esm.py)
hands the requests in batches of 10 to N warm environments of the real handler, each a process of its
own. They create the checkpoints in the CBR emulator, which answers creates over R a second with
429 APIGW.0308; they keep their idempotency ledger in DynamoDB and publish every outcome to an event bus
whose rule copies it to a capture queue (both in moto). Everything goes over HTTP on loopback.

Afterwards it checks that every vault got exactly one checkpoint (the emulator's state), that every
request ended as a Created event naming that checkpoint and none went to the dead-letter queue, and
reports the wall time against the floor N / R, the throttled answers per checkpoint and the records
handed back; the progress over time goes to a PNG plot and, with `--write`, into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cbr_emulator import RateLimit
from devtools.esm import EventSourceMapping, MappingConfig, MappingReport
from devtools.sandbox import REGION, Sandbox

ROOT = Path(__file__).resolve().parent.parent
SECTION_BEGIN = "<!-- scale:begin -->"
SECTION_END = "<!-- scale:end -->"
REQUEST_QUEUE = "cbr-checkpointer-scale-requests"
REQUEST_DEAD_LETTER_QUEUE = "cbr-checkpointer-requests-dlq"
MAX_RECEIVES = 5  # the template's maxReceiveCount for the request queue
CREATED = "CBR Checkpoint Created"
# Vault ids are derived from their index, so that every run uses the same ones.
VAULT_NAMESPACE = uuid.UUID("5ca1ab1e-0000-4000-8000-00000000c0de")
HISTORY_ROWS = 10


def vault_id(index: int) -> str:
    return str(uuid.uuid5(VAULT_NAMESPACE, f"vault-{index}"))


def resource_id(index: int) -> str:
    return str(uuid.uuid5(VAULT_NAMESPACE, f"server-{index}"))


@dataclass(frozen=True)
class ScaleConfig:
    vaults: int = 1000
    rate: float = 5.0  # creates a second the emulator allows (burst: the rate rounded up)
    environments: int = 4
    # Seconds a handed-back record stays invisible before it is delivered again. The template's 750 s
    # would leave a local run waiting minutes for each one; a batch takes a few seconds here.
    visibility_timeout: int = 30
    backlog: int = 50  # requests kept waiting on the queue (see Feeder)
    time_limit: float | None = None  # default: three times the floor plus room for redeliveries
    log_dir: Path | None = None  # the environments' logs (environment-<n>.log); None: discarded

    def __post_init__(self) -> None:
        if self.vaults < 1:
            raise ValueError(f"vaults must be at least 1, not {self.vaults}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number of creates a second, not {self.rate}")
        if self.environments < 1:
            raise ValueError(f"environments must be at least 1, not {self.environments}")
        if not 0 <= self.visibility_timeout <= 43200:
            raise ValueError(
                f"visibility_timeout must be 0-43200 s (SQS's range), not {self.visibility_timeout}"
            )
        if self.backlog < 10:
            raise ValueError(f"backlog must be at least 10 (one batch), not {self.backlog}")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ValueError(f"time_limit must be positive, not {self.time_limit}")

    @property
    def floor(self) -> float:
        """The shortest possible wall time: every vault's create at the rate limit."""
        return self.vaults / self.rate

    @property
    def effective_time_limit(self) -> float:
        if self.time_limit is not None:
            return self.time_limit
        return 3 * self.floor + MAX_RECEIVES * self.visibility_timeout + 60


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the environments were let go
    checkpoints: int  # created so far
    throttled: int  # creates answered 429 so far


@dataclass
class ScaleResult:
    config: ScaleConfig
    mapping: MappingReport
    enqueue_seconds: float
    samples: list[Sample]
    checkpoints_per_vault: Counter[str]  # every vault id that got a checkpoint -> how many
    creates_sent: int  # POST /checkpoints the emulator received, throttled ones included
    throttled: int
    events: list[dict[str, Any]]  # every event the function published, as captured
    request_vaults: dict[str, str]  # message id -> the vault its request names
    dead_letters: int
    load_average: tuple[float, float, float]  # 1, 5 and 15 minutes, when the run started
    load_average_end: tuple[float, float, float]  # when the queue was drained
    problems: list[str] = field(default_factory=list)

    @property
    def checkpoints(self) -> int:
        return sum(self.checkpoints_per_vault.values())

    @property
    def wall_over_floor(self) -> float:
        return self.mapping.seconds / self.config.floor

    @property
    def throttled_per_checkpoint(self) -> float:
        return self.throttled / self.checkpoints if self.checkpoints else math.inf

    def check(self) -> list[str]:
        """What went wrong: a vault without exactly one checkpoint, a request that did not end as a
        Created event naming its vault's checkpoint, a dead letter, an undrained queue."""
        problems: list[str] = []
        if not self.mapping.drained:
            problems.append(
                f"the request queue was not drained within {self.config.effective_time_limit:.0f} s"
            )
        wanted = {vault_id(index) for index in range(self.config.vaults)}
        missing = sorted(wanted - set(self.checkpoints_per_vault))
        if missing:
            problems.append(f"{len(missing)} vault(s) got no checkpoint, e.g. {missing[0]}")
        repeated = sorted(vault for vault, count in self.checkpoints_per_vault.items() if count > 1)
        if repeated:
            problems.append(f"{len(repeated)} vault(s) got more than one checkpoint, e.g. {repeated[0]}")
        strangers = sorted(set(self.checkpoints_per_vault) - wanted)
        if strangers:
            problems.append(f"{len(strangers)} checkpoint(s) in vaults no request named, e.g. {strangers[0]}")
        problems += self._lost_requests()
        if self.dead_letters:
            problems.append(f"{self.dead_letters} request(s) ended in the dead-letter queue")
        if self.mapping.errors:
            problems.append(f"{len(self.mapping.errors)} invocation(s) failed: {self.mapping.errors[0]}")
        if self.mapping.not_deleted:
            problems.append(f"{self.mapping.not_deleted} finished record(s) could not be deleted")
        return problems

    def _lost_requests(self) -> list[str]:
        kinds = Counter(event["detail-type"] for event in self.events)
        problems = [f"{count} {kind} event(s)" for kind, count in sorted(kinds.items()) if kind != CREATED]
        checkpoints: dict[str, set[str]] = {}
        vaults: dict[str, set[str]] = {}
        for event in self.events:
            if event["detail-type"] == CREATED:
                key = event["detail"]["trigger"]["id"]  # the SQS message id
                checkpoints.setdefault(key, set()).add(event["detail"]["checkpoint"]["id"])
                vaults.setdefault(key, set()).add(event["detail"]["vault_id"])
        unreported = sorted(set(self.request_vaults) - set(checkpoints))
        if unreported:
            problems.append(f"{len(unreported)} request(s) ended with no Created event, e.g. {unreported[0]}")
        ambiguous = sorted(key for key, ids in checkpoints.items() if len(ids) > 1)
        if ambiguous:
            problems.append(
                f"{len(ambiguous)} request(s) reported more than one checkpoint, e.g. {ambiguous[0]}"
            )
        misplaced = sorted(key for key, found in vaults.items() if found != {self.request_vaults.get(key)})
        if misplaced:
            problems.append(f"{len(misplaced)} Created event(s) name another vault, e.g. {misplaced[0]}")
        return problems


def run_scale(config: ScaleConfig) -> ScaleResult:
    """Build the world, enqueue one request per vault, let the fleet drain the queue, gather the figures."""
    load_average = os.getloadavg()
    with Sandbox() as sandbox:
        emulator = sandbox.emulator
        for index in range(config.vaults):
            emulator.add_vault(
                vault_id(index),
                [{"id": resource_id(index), "type": "OS::Nova::Server", "name": f"ecs-{index:04d}"}],
                name=f"vault-{index:04d}",
            )
        emulator.limit_creates(RateLimit(config.rate))
        table = sandbox.create_ledger_table()
        queue_url, queue_arn, dead_letter_url = _request_queues(sandbox, config.visibility_timeout)
        mapping_config = MappingConfig(
            queue_url=queue_url,
            queue_arn=queue_arn,
            endpoint=sandbox.moto_url,
            region=REGION,
            function_environment=sandbox.environment | {"IDEMPOTENCY_TABLE": table},
            environments=config.environments,
            log_dir=config.log_dir,
        )
        samples: list[Sample] = []
        feeder = Feeder(sandbox, queue_url, config.vaults, config.backlog)

        def poll(seconds: float) -> None:
            # Before the mapping looks at the queue's depth: it stops once the queue is empty.
            feeder.top_up()
            samples.append(Sample(seconds, len(emulator.created), emulator.throttled_creates))

        with EventSourceMapping(mapping_config) as mapping:
            started = time.monotonic()
            feeder.top_up()
            enqueue_seconds = time.monotonic() - started
            # The emulator's bucket starts full now, not when the emulator was started.
            emulator.limit_creates(RateLimit(config.rate))
            poll(0.0)
            report = mapping.run(time_limit=config.effective_time_limit, on_poll=poll)
        samples.append(Sample(report.seconds, len(emulator.created), emulator.throttled_creates))
        created = emulator.created
        result = ScaleResult(
            config=config,
            mapping=report,
            enqueue_seconds=enqueue_seconds,
            samples=samples,
            checkpoints_per_vault=Counter(checkpoint["vault"]["id"] for checkpoint in created),
            creates_sent=sum(
                1 for r in emulator.requests if r.method == "POST" and r.path.endswith("/checkpoints")
            ),
            throttled=emulator.throttled_creates,
            events=sandbox.captured_events(),
            request_vaults=feeder.request_vaults,
            dead_letters=_depth(sandbox, dead_letter_url),
            load_average=load_average,
            load_average_end=os.getloadavg(),
        )
    result.problems = result.check()
    return result


def _request_queues(sandbox: Sandbox, visibility_timeout: int) -> tuple[str, str, str]:
    """The request queue and its dead-letter queue, as the template declares them; (url, arn, dlq url)."""
    sqs = sandbox.aws("sqs")
    dead_letter_url = sqs.call("CreateQueue", {"QueueName": REQUEST_DEAD_LETTER_QUEUE})["QueueUrl"]
    redrive = {"deadLetterTargetArn": _arn(sandbox, dead_letter_url), "maxReceiveCount": MAX_RECEIVES}
    queue_url = sqs.call(
        "CreateQueue",
        {
            "QueueName": REQUEST_QUEUE,
            "Attributes": {
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(redrive),
            },
        },
    )["QueueUrl"]
    return queue_url, _arn(sandbox, queue_url), dead_letter_url


def _arn(sandbox: Sandbox, queue_url: str) -> str:
    answer = sandbox.aws("sqs").call(
        "GetQueueAttributes", {"QueueUrl": queue_url, "AttributeNames": ["QueueArn"]}
    )
    return str(answer["Attributes"]["QueueArn"])


def _depth(sandbox: Sandbox, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    answer = sandbox.aws("sqs").call("GetQueueAttributes", {"QueueUrl": queue_url, "AttributeNames": names})
    return sum(int(answer["Attributes"].get(name, "0")) for name in names)


class Feeder:
    """Sends one request per vault (SendMessageBatch, 10 at a time) as the queue drains, keeping up to
    `backlog` messages waiting.

    Not all at once: moto looks through the whole queue for each message it takes in or hands out, so a
    queue of 1,000 costs it about a second of CPU a ReceiveMessage, which a run would measure instead of
    the function. A backlog well above what the environments take in one poll keeps them as busy as a full
    queue would.
    """

    def __init__(self, sandbox: Sandbox, queue_url: str, vaults: int, backlog: int) -> None:
        self._sqs = sandbox.aws("sqs")
        self._queue_url = queue_url
        self._next = 0
        self._vaults = vaults
        self._backlog = backlog
        self.request_vaults: dict[str, str] = {}  # message id -> the vault its request names

    @property
    def done(self) -> bool:
        return self._next >= self._vaults

    def top_up(self) -> None:
        if self.done:
            return
        answer = self._sqs.call(
            "GetQueueAttributes",
            {"QueueUrl": self._queue_url, "AttributeNames": ["ApproximateNumberOfMessages"]},
        )
        waiting = int(answer["Attributes"]["ApproximateNumberOfMessages"])
        while waiting < self._backlog and not self.done:
            waiting += self._send_batch()

    def _send_batch(self) -> int:
        indexes = range(self._next, min(self._next + 10, self._vaults))
        entries = [
            {
                "Id": str(index),
                "MessageBody": json.dumps({"vault_id": vault_id(index), "name": f"scale-{index:04d}"}),
            }
            for index in indexes
        ]
        answer = self._sqs.call("SendMessageBatch", {"QueueUrl": self._queue_url, "Entries": entries})
        if answer.get("Failed"):
            raise RuntimeError(f"SendMessageBatch refused {answer['Failed']}")
        for sent in answer["Successful"]:
            self.request_vaults[sent["MessageId"]] = vault_id(int(sent["Id"]))
        self._next = indexes.stop
        return len(entries)


# -- reporting -------------------------------------------------------------------------------------


def table_rows(result: ScaleResult) -> list[tuple[str, str]]:
    config, mapping = result.config, result.mapping
    wanted = config.vaults
    exactly_once = sum(1 for index in range(wanted) if result.checkpoints_per_vault.get(vault_id(index)) == 1)
    reported = {
        event["detail"]["trigger"]["id"] for event in result.events if event["detail-type"] == CREATED
    }
    start, end = result.load_average, result.load_average_end
    return [
        ("vaults (one request each)", f"{wanted:,}"),
        ("create rate limit", f"{config.rate:g}/s (burst {RateLimit(config.rate).capacity})"),
        ("warm environments", f"{config.environments} (batches of 10, MAX_CONCURRENCY 10 each)"),
        ("visibility timeout", f"{config.visibility_timeout} s (DLQ after {MAX_RECEIVES} receives)"),
        ("wall time", f"{mapping.seconds:.1f} s"),
        ("floor (vaults / rate)", f"{config.floor:.1f} s"),
        ("wall / floor", f"{result.wall_over_floor:.2f}"),
        ("vaults with exactly one checkpoint", f"{exactly_once:,} of {wanted:,}"),
        ("checkpoints created", f"{result.checkpoints:,}"),
        (
            "requests ended as a Created event",
            f"{len(reported & set(result.request_vaults)):,} of {wanted:,}",
        ),
        ("dead letters", f"{result.dead_letters}"),
        ("creates sent", f"{result.creates_sent:,}"),
        ("throttled answers (429 APIGW.0308)", f"{result.throttled:,}"),
        ("throttled answers per checkpoint", f"{result.throttled_per_checkpoint:.2f}"),
        ("invocations", f"{len(mapping.invocations):,}"),
        ("failed ReceiveMessage / DeleteMessageBatch calls", f"{len(mapping.poll_errors)}"),
        ("records handed to the handler", f"{mapping.records:,}"),
        ("records handed back (batchItemFailures)", f"{mapping.handed_back:,}"),
        ("records delivered again", f"{mapping.redelivered:,}"),
        (
            "requests waiting on the queue",
            f"up to {config.backlog}, topped up as it drains ({result.enqueue_seconds:.1f} s for the first, "
            "before the clock)",
        ),
        ("load average at the start (1/5/15 min)", f"{start[0]:.2f} / {start[1]:.2f} / {start[2]:.2f}"),
        ("load average at the end (1/5/15 min)", f"{end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f}"),
    ]


def format_table(result: ScaleResult) -> str:
    rows = table_rows(result)
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def write_plot(result: ScaleResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    config = result.config
    seconds = [sample.seconds for sample in result.samples]
    figure, created_axis = plt.subplots(figsize=(8, 4.5), dpi=110)
    created_axis.plot(
        seconds, [s.checkpoints for s in result.samples], color="tab:blue", label="checkpoints created"
    )
    end = max(seconds[-1], config.floor)
    burst = RateLimit(config.rate).capacity
    ideal_end = (config.vaults - burst) / config.rate
    created_axis.plot(
        [0, ideal_end, end],
        [burst, config.vaults, config.vaults],
        color="tab:gray",
        linestyle="--",
        label=f"the limit: {config.rate:g}/s after a burst of {burst}",
    )
    created_axis.set_xlabel("seconds")
    created_axis.set_ylabel("checkpoints")
    throttled_axis = created_axis.twinx()
    throttled_axis.plot(
        seconds,
        [s.throttled for s in result.samples],
        color="tab:red",
        linestyle=":",
        label="throttled answers",
    )
    throttled_axis.set_ylabel("throttled answers (429)", color="tab:red")
    lines = created_axis.get_lines() + throttled_axis.get_lines()
    created_axis.legend(lines, [str(line.get_label()) for line in lines], loc="upper left")
    created_axis.set_title(
        f"{config.vaults:,} vaults, {config.environments} environments, creates limited to {config.rate:g}/s"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def summary(result: ScaleResult, commit: str) -> dict[str, Any]:
    """One run in a line of the history table."""
    return {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "commit": commit,
        "config": {key: value for key, value in asdict(result.config).items() if key != "log_dir"},
        "wall_over_floor": round(result.wall_over_floor, 3),
        "throttled_per_checkpoint": round(result.throttled_per_checkpoint, 3),
        "handed_back": result.mapping.handed_back,
        "problems": len(result.problems),
        "load_average": [round(value, 2) for value in result.load_average],
        "load_average_end": [round(value, 2) for value in result.load_average_end],
    }


def section(
    result: ScaleResult,
    *,
    command: str,
    commit: str,
    png: Path,
    document: Path,
    history: list[dict[str, Any]],
) -> str:
    """The BENCHMARKS.md section of this run (markers included)."""
    config = result.config
    lines = [
        SECTION_BEGIN,
        "## Fleet run: `make scale`",
        "",
        "One SQS request per vault (sent as the queue drains, up to "
        f"{config.backlog} waiting: moto's cost per message grows with the length of the queue), drained by "
        "a local event source mapping (`devtools/esm.py`): "
        f"{config.environments} warm execution environments, each a process that imported the handler once, "
        "receive batches of 10 from the request queue in moto, invoke the handler with the Lambda SQS event "
        "and delete what it did not hand back in `batchItemFailures`; handed-back records come again after "
        "the visibility timeout, and go to the dead-letter queue after 5 receives. The CBR emulator answers "
        "creates over the rate limit with 429 APIGW.0308; the ledger is DynamoDB in moto; every event is "
        "captured from the bus. All over HTTP on loopback, on one machine: moto and the environments share "
        "its CPUs. This section is written by `make scale`.",
        "",
        f"- command: `{command}` at commit {commit} ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        f"- machine: {os.cpu_count()} CPUs ({platform.machine()}, {platform.system()} {platform.release()}), "
        f"load average {'/'.join(f'{v:.2f}' for v in result.load_average)} (1/5/15 min) at the start, "
        f"{'/'.join(f'{v:.2f}' for v in result.load_average_end)} at the end (the machine is shared)",
        f"- checks: {'all passed' if not result.problems else '; '.join(result.problems)}",
        "",
        "| figure | value |",
        "|---|---:|",
        *(f"| {name} | {value} |" for name, value in table_rows(result)),
        "",
        f"![checkpoints created over time]({os.path.relpath(png, document.parent)})",
    ]
    if history:
        lines += [
            "",
            "Latest runs, newest first:",
            "",
            "| date (UTC) | commit | vaults | rate | environments | wall / floor | throttled / checkpoint "
            "| handed back | checks | load (1 min, start / end) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for run in reversed(history):
            run_config = run["config"]
            lines.append(
                f"| {run['date']} | {run['commit']} | {run_config['vaults']:,} | {run_config['rate']:g}/s "
                f"| {run_config['environments']} | {run['wall_over_floor']:.2f} "
                f"| {run['throttled_per_checkpoint']:.2f} | {run['handed_back']:,} "
                f"| {'passed' if not run['problems'] else str(run['problems']) + ' problem(s)'} "
                f"| {run['load_average'][0]:.2f} / {_end_load(run)} |"
            )
    lines.append(SECTION_END)
    return "\n".join(lines)


def _end_load(run: dict[str, Any]) -> str:
    end = run.get("load_average_end")  # not kept by the first runs
    return "?" if end is None else f"{end[0]:.2f}"


def scale_section(document: str) -> str | None:
    """The scale section of a BENCHMARKS.md text (markers included), or None."""
    start, end = document.find(SECTION_BEGIN), document.find(SECTION_END)
    if start < 0 or end < start:
        return None
    return document[start : end + len(SECTION_END)]


def with_scale_section(document: str, new_section: str) -> str:
    """`document` with its scale section replaced by `new_section`, or `new_section` appended."""
    old = scale_section(document)
    if old is None:
        return document.rstrip("\n") + "\n\n" + new_section + "\n"
    return document.replace(old, new_section)


def git_commit() -> str:
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT, check=False).returncode != 0
    return completed.stdout.strip() + (" + uncommitted changes" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--vaults", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5.0, help="creates a second the emulator allows")
    parser.add_argument("--environments", type=int, default=4, help="warm execution environments")
    parser.add_argument("--visibility-timeout", type=int, default=30, metavar="SECONDS")
    parser.add_argument("--backlog", type=int, default=50, help="requests kept waiting on the queue")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--logs", type=Path, default=ROOT / "build" / "scale", help="the environments' logs")
    parser.add_argument("--png", type=Path, default=ROOT / "benchmarks" / "scale-progress.png")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--history", type=Path, default=ROOT / "benchmarks" / "scale-runs.json")
    parser.add_argument("--write", action="store_true", help="write the plot, the history and BENCHMARKS.md")
    arguments = parser.parse_args(argv)
    try:
        config = ScaleConfig(
            vaults=arguments.vaults,
            rate=arguments.rate,
            environments=arguments.environments,
            visibility_timeout=arguments.visibility_timeout,
            backlog=arguments.backlog,
            time_limit=arguments.time_limit,
            log_dir=arguments.logs,
        )
    except ValueError as invalid:
        parser.error(str(invalid))
    arguments.logs.mkdir(parents=True, exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    print(
        f"scale: {config.vaults} vaults at {config.rate:g} creates/s through "
        f"{config.environments} environments (floor {config.floor:.0f} s; logs in {arguments.logs})",
        file=sys.stderr,
    )
    result = run_scale(config)
    print(format_table(result))
    if arguments.write:
        commit = git_commit()
        command = (
            f"make scale VAULTS={config.vaults} RATE={config.rate:g} ENVIRONMENTS={config.environments} "
            f"VISIBILITY={config.visibility_timeout}"
        )
        history = (
            json.loads(arguments.history.read_text(encoding="utf-8")) if arguments.history.exists() else []
        )
        history = [*history, summary(result, commit)][-HISTORY_ROWS:]
        arguments.history.write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
        write_plot(result, arguments.png)
        document = (
            arguments.output.read_text(encoding="utf-8") if arguments.output.exists() else "# Benchmarks\n"
        )
        text = section(
            result,
            command=command,
            commit=commit,
            png=arguments.png,
            document=arguments.output,
            history=history,
        )
        arguments.output.write_text(with_scale_section(document, text), encoding="utf-8")
        print(f"wrote {arguments.output}, {arguments.png} and {arguments.history}", file=sys.stderr)
    for problem in result.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
