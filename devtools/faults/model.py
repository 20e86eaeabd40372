"""What the fault matrix is made of: a scenario (setup and expected verdict), the world its setup
scripts, and the row that records what one scenario did in one trigger mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cbr_emulator import Emulator, Fault, RecordedRequest
from devtools.faults.proxy import FaultProxy
from devtools.sandbox import PROJECT_ID, RESOURCE_ID, VAULT_ID, Sandbox

Mode = Literal["timer", "sqs"]
MODES: tuple[Mode, ...] = ("timer", "sqs")
MAX_REDELIVERIES = 3
EXPANDED = "CBR Backup Selection Expanded"
# Events that are not the outcome of one request: following a checkpoint, and listing a selection.
NOT_REQUEST_STAGES = frozenset({"completion", "selection"})


@dataclass
class World:
    """What a scenario's setup scripts. Setup runs inside the first delivery's execution environment."""

    sandbox: Sandbox
    cbr: FaultProxy
    aws: FaultProxy
    mode: Mode

    @property
    def emulator(self) -> Emulator:
        return self.sandbox.emulator

    def fault(self, **fields: Any) -> None:
        self.emulator.faults.append(Fault(**fields))

    def warm_token(self) -> None:
        """Make the first delivery's runtime hold an IAM token already, as a warm environment would."""
        from cbr_checkpointer.cbr import RegionalCbr
        from cbr_checkpointer.runtime import get_runtime

        (cbr,) = (client for client in get_runtime().clients if isinstance(client, RegionalCbr))
        cbr.list_backups(PROJECT_ID, region=None, vault_id=VAULT_ID)


Outcome = Literal["created", "failed", "rejected", "pending"]


@dataclass(frozen=True)
class Expect:
    """The verdict a scenario must reach, in either mode."""

    outcomes: tuple[Outcome, ...] = ("created",)  # one per idempotency key, any order
    checkpoints: int = 1
    code: str | None = None  # the Failed event's error code
    fields: tuple[str, ...] = ()  # fields the Rejected event must name
    returns: int | None = 0  # deliveries returned to the queue / raised / timed out; None: any
    check: Callable[[Row], Iterable[str]] | None = None  # more, scenario-specific problems


@dataclass(frozen=True)
class Scenario:
    name: str
    setup: Callable[[World], None]
    expect: Expect
    request: Any = field(default_factory=lambda: {"vault_id": VAULT_ID, "resources": [RESOURCE_ID]})
    keys: int = 1  # idempotency keys in the request (a "many" request has one per item)
    timeout: float = 8.0  # the Lambda timeout of every delivery; 5 s of it is the service's safety margin
    auth: Literal["aksk", "token"] = "aksk"
    env: Mapping[str, str] = field(default_factory=dict)  # every delivery
    first_env: Mapping[str, str] = field(default_factory=dict)  # the first delivery only
    copies: int = 1  # the first delivery arrives this many times at once
    abandon_first: bool = False  # the first delivery outlives its deadline and is killed
    watch: bool = False  # follow completion: every delivery sets WATCH_QUEUE_URL (through the AWS proxy)


@dataclass
class Row:
    """What one scenario did in one mode, and what is wrong with it."""

    scenario: Scenario
    mode: Mode
    rounds: list[list[str]]  # per delivery round, the fate of each copy: ok | returned | raised | timeout
    round_seconds: list[float]
    created: list[dict[str, Any]]  # checkpoints at the emulator
    events: list[dict[str, Any]]  # published, as the capture queue got them
    cbr_requests: list[RecordedRequest]  # everything the emulator answered
    token_requests: int
    cbr: FaultProxy
    aws: FaultProxy
    errors: list[str]  # texts of exceptions that escaped the handler (what Lambda would log)
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def returns(self) -> int:
        return sum(1 for fates in self.rounds for fate in fates if fate != "ok")

    @property
    def ended_pending(self) -> bool:
        return any(fate != "ok" for fate in self.rounds[-1])

    def events_of(self, detail_type: str) -> list[dict[str, Any]]:
        return [
            event["detail"]
            for event in self.events
            if event["detail-type"] == detail_type and event["detail"].get("stage") not in NOT_REQUEST_STAGES
        ]

    def expansions(self) -> list[dict[str, Any]]:
        """The events of selections listed (Expanded, or Failed at stage selection)."""
        return [
            event["detail"]
            for event in self.events
            if event["detail-type"] == EXPANDED or event["detail"].get("stage") == "selection"
        ]

    def by_key(self) -> dict[str, list[dict[str, Any]]]:
        """The request outcome events by idempotency key (events that follow a checkpoint to its
        completion, `"stage": "completion"`, and those of a selection, which stands for its vaults'
        requests, are not outcomes of a request)."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for event in self.events:
            if event["detail-type"] != EXPANDED and event["detail"].get("stage") not in NOT_REQUEST_STAGES:
                grouped.setdefault(event["detail"]["idempotency_key"], []).append(event["detail"])
        return grouped

    def outcomes(self) -> list[str]:
        found = sorted(_final(details) for details in self.by_key().values())
        missing = self.scenario.keys - len(found)
        return found + ["pending"] * missing if self.ended_pending else found

    @property
    def passed(self) -> bool:
        return not self.problems


def _final(details: list[dict[str, Any]]) -> str:
    return str(details[-1]["outcome"])
