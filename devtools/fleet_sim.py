"""A fleet of execution environments against CBR's rate limit, in virtual time.

Discrete events, one seed, no threads, no sockets: a run of 10,000 vaults takes a few seconds of CPU,
100,000 about half a minute, and a seed always gives the same run. What is simulated, and what is the
function's own code:

- the API gateway: a token bucket of `rate` creates/s and `burst` tokens; a call that finds it empty
  is answered 429 (without Retry-After) after `throttle_latency`, one that finds a token takes
  `create_latency`; every latency varies by ± `jitter`. Only creates are modelled: completion checks
  would share the same limit;
- the SQS event source: one message per vault, up to `environments` (MaximumConcurrency) invocations
  at a time, batches of `batch_size`, each invocation `function_timeout` long; handed-back records
  (partial batch response) stay invisible until `visibility_timeout` after their receipt, then come again;
- each invocation runs its records concurrently, up to `max_in_flight` at a time, as the handler does:
  ledger claim, then the create loop of `CheckpointService` (attempts, backoff, the invocation's deadline
  and safety margin) with the REAL `RetryPolicy` deciding every delay and give-up, and the environment's
  REAL `AdaptiveLimiter` deciding when each call may start (reading virtual time through its clock port).
  The ledger is the real `MemoryLedger`, so a redelivered record that was already created is replayed.

Every create is counted per vault: each vault must be created exactly once.

    python -m devtools.fleet_sim                 # the table: 10,000 and 100,000 vaults, ours vs today's
    python -m devtools.fleet_sim --vaults 2000 --environments 50
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import sys
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, Protocol

from cbr_checkpointer.domain import Claimed, Completed, StoredOutcome
from cbr_checkpointer.ledger import MemoryLedger
from cbr_checkpointer.rate import AdaptiveLimiter, Permit, Verdict
from cbr_checkpointer.retry import RetryPolicy
from cbr_checkpointer.service import MIN_CALL_SECONDS

# fixed: today's behaviour, MAX_CONCURRENCY calls in flight whatever CBR answers, retries only.
# adaptive: each environment's AdaptiveLimiter, with the retry policy as it is.
# requeue: adaptive, and a throttled call goes straight back to the limiter, without the retry policy's
#   pause. Not what the function does: it measures what dropping that pause would buy.
Strategy = Literal["fixed", "adaptive", "requeue"]
STRATEGIES: tuple[Strategy, ...] = ("fixed", "adaptive", "requeue")
Phase = Literal["queued", "redelivery", "tail"]


@dataclass(frozen=True, slots=True)
class FleetConfig:
    vaults: int = 10_000
    rate: float = 50.0
    burst: float = 10.0
    environments: int = 5
    batch_size: int = 10
    max_in_flight: int = 10
    function_timeout: float = 120.0
    visibility_timeout: float = 750.0
    create_latency: float = 0.25
    jitter: float = 0.5
    throttle_latency: float = 0.02
    ledger_latency: float = 0.01
    publish_latency: float = 0.03
    seed: int = 7

    def __post_init__(self) -> None:
        for name in ("vaults", "environments", "batch_size", "max_in_flight"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("rate", "burst", "function_timeout", "visibility_timeout", "create_latency"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    @property
    def floor(self) -> float:
        """The least time the gateway lets N creates through: N / rate."""
        return self.vaults / self.rate


@dataclass(slots=True)
class FleetResult:
    strategy: Strategy
    config: FleetConfig
    wall: float = 0.0
    creates: Counter[int] = field(default_factory=Counter)
    throttled: int = 0
    handed_back: int = 0
    deliveries: int = 0
    backoff_seconds: float = 0.0
    pacing_seconds: float = 0.0
    unused_capacity: dict[Phase, float] = field(
        default_factory=lambda: {"queued": 0, "redelivery": 0, "tail": 0}
    )
    first_full_rate: float | None = None

    @property
    def checkpoints(self) -> int:
        return sum(self.creates.values())

    @property
    def each_vault_once(self) -> bool:
        return len(self.creates) == self.config.vaults and set(self.creates.values()) == {1}

    @property
    def wall_over_floor(self) -> float:
        return self.wall / self.config.floor

    @property
    def throttled_per_checkpoint(self) -> float:
        return self.throttled / max(1, self.checkpoints)


class CallLimiter(Protocol):
    """What an environment asks before each CBR call: the function's limiter, or today's fixed pool."""

    def try_acquire(self) -> Permit | float: ...

    def release(self, permit: Permit, verdict: Verdict) -> None: ...


class FixedPool:
    """Today's behaviour: at most `size` calls in flight (the thread pool), whatever CBR answers."""

    def __init__(self, size: int, clock: VirtualClock) -> None:
        self._size = size
        self._clock = clock
        self._in_flight = 0

    def try_acquire(self) -> Permit | float:
        if self._in_flight >= self._size:
            return math.inf
        self._in_flight += 1
        return Permit(started=self._clock.now(), epoch=0, paced=False)

    def release(self, permit: Permit, verdict: Verdict) -> None:
        self._in_flight -= 1


class VirtualClock:
    """The limiter's clock port in the simulation: it reads virtual time and never blocks."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        raise RuntimeError("the simulation never blocks; it asks try_acquire and schedules the answer")


class TokenBucket:
    """The API gateway's throttle, with the capacity it let go unused, by phase."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = 0.0
        self.wasted: dict[Phase, float] = {"queued": 0.0, "redelivery": 0.0, "tail": 0.0}

    def refill(self, now: float, phase: Phase) -> None:
        self.tokens += (now - self.updated) * self.rate
        self.updated = now
        if self.tokens > self.burst:
            self.wasted[phase] += (self.tokens - self.burst) / self.rate
            self.tokens = self.burst

    def take(self) -> bool:
        """One token if there is one (refill first)."""
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class Record:
    vault: int
    received: float
    attempt: int = 0
    asked: float = 0.0
    done: bool = False
    handed_back: bool = False


@dataclass(slots=True)
class Invocation:
    records: list[Record]
    deadline: float
    waiting: deque[Record] = field(default_factory=deque)


class Fleet:
    """One run: the event loop, the queue, the gateway and the environments."""

    def __init__(self, config: FleetConfig, strategy: Strategy) -> None:
        self.config = config
        self.strategy = strategy
        self.rng = random.Random(config.seed)
        self.clock = VirtualClock()
        self.policy = RetryPolicy()
        self.ledger = MemoryLedger(ttl_seconds=7 * 24 * 3600)
        self.gateway = TokenBucket(config.rate, config.burst)
        self.result = FleetResult(strategy, config)
        self.visible: deque[int] = deque(range(config.vaults))
        self.invisible: list[tuple[float, int]] = []  # (visible again at, vault)
        self.events: list[tuple[float, int, Callable[[], None]]] = []
        self.sequence = itertools.count()
        self.limiters: list[CallLimiter] = [self._limiter() for _ in range(config.environments)]
        self.invocations: list[Invocation | None] = [None] * config.environments
        self.pump_at: list[float] = [math.inf] * config.environments
        self.idle: set[int] = set()
        self.in_flight = 0
        self.admitted_window: deque[float] = deque()

    def _limiter(self) -> CallLimiter:
        if self.strategy == "fixed":
            return FixedPool(self.config.max_in_flight, self.clock)
        return AdaptiveLimiter(self.config.max_in_flight, clock=self.clock)

    # The event loop.

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, (when, next(self.sequence), action))

    def run(self, max_events: int = 50_000_000) -> FleetResult:
        for environment in range(self.config.environments):
            self.at(0.0, partial(self.poll, environment))
        for _ in range(max_events):
            if not self.events:
                break
            when, _, action = heapq.heappop(self.events)
            if len(self.result.creates) < self.config.vaults:  # unused capacity counts until the last create
                self.gateway.refill(when, self.phase())
            self.clock.time = when
            action()
        else:
            raise RuntimeError(f"the simulation did not finish within {max_events} events")
        self.result.unused_capacity = dict(self.gateway.wasted)
        return self.result

    def phase(self) -> Phase:
        if self.visible:
            return "queued"
        if self.invisible:
            return "redelivery"
        return "tail"

    @property
    def now(self) -> float:
        return self.clock.time

    # The SQS event source.

    def poll(self, environment: int) -> None:
        while self.invisible and self.invisible[0][0] <= self.now:
            self.visible.append(heapq.heappop(self.invisible)[1])
        if not self.visible:
            if self.invisible:
                self.at(self.invisible[0][0], lambda: self.poll(environment))
            else:
                self.idle.add(environment)
            return
        batch = [self.visible.popleft() for _ in range(min(self.config.batch_size, len(self.visible)))]
        self.result.deliveries += len(batch)
        invocation = Invocation(
            [Record(vault, received=self.now) for vault in batch],
            deadline=self.now + self.config.function_timeout,
        )
        self.invocations[environment] = invocation
        for record in invocation.records:
            self.at(
                self.now + self.latency(self.config.ledger_latency),
                partial(self.claim, environment, record),
            )

    def finish_invocation(self, environment: int) -> None:
        invocation = self.invocations[environment]
        assert invocation is not None
        self.invocations[environment] = None
        for record in invocation.records:
            if record.handed_back:
                visible_at = record.received + self.config.visibility_timeout
                heapq.heappush(self.invisible, (visible_at, record.vault))
                for idle in self.idle:
                    self.at(visible_at, partial(self.poll, idle))
                self.idle.clear()
        self.at(self.now + self.latency(self.config.publish_latency), lambda: self.poll(environment))

    def record_done(self, environment: int, record: Record) -> None:
        record.done = True
        invocation = self.invocations[environment]
        assert invocation is not None
        if all(other.done for other in invocation.records):
            self.finish_invocation(environment)

    # One record: the service's claim and create loop.

    def claim(self, environment: int, record: Record) -> None:
        invocation = self.invocations[environment]
        assert invocation is not None
        claim = self.ledger.claim(f"vault-{record.vault}", now=self.now, lease_until=invocation.deadline)
        if isinstance(claim, Completed):
            self.record_done(environment, record)
            return
        if not isinstance(claim, Claimed):
            raise AssertionError(f"vault {record.vault} is held by another invocation: {claim!r}")
        self.ask(environment, record)

    def ask(self, environment: int, record: Record) -> None:
        invocation = self.invocations[environment]
        assert invocation is not None
        record.asked = self.now
        invocation.waiting.append(record)
        self.pump(environment)

    def pump(self, environment: int) -> None:
        """Start as many waiting calls as the environment's limiter allows now; wake again when it says."""
        invocation = self.invocations[environment]
        if invocation is None:
            return
        limiter = self.limiters[environment]
        while invocation.waiting:
            record = invocation.waiting[0]
            within = max(invocation.deadline - self.policy.safety_margin - record.asked, MIN_CALL_SECONDS)
            if self.now >= record.asked + within:
                invocation.waiting.popleft()
                self.failed_call(environment, record)
                continue
            answer = limiter.try_acquire()
            if isinstance(answer, Permit):
                invocation.waiting.popleft()
                self.result.pacing_seconds += self.now - record.asked
                self.send(environment, record, answer)
                continue
            if answer != math.inf and answer > record.asked + within:
                invocation.waiting.popleft()  # the limiter will not allow it in time: nothing is sent
                self.failed_call(environment, record)
                continue
            wake = min(answer, record.asked + within)
            if wake < self.pump_at[environment] or self.pump_at[environment] <= self.now:
                self.pump_at[environment] = wake
                self.at(wake, lambda: self.pump(environment))
            return

    def send(self, environment: int, record: Record, permit: Permit) -> None:
        self.gateway.refill(self.now, self.phase())
        admitted = self.gateway.take()
        if not admitted:
            self.result.throttled += 1
            latency = self.latency(self.config.throttle_latency)
            self.at(self.now + latency, lambda: self.answer(environment, record, permit, False))
            return
        self.note_admitted()
        latency = self.latency(self.config.create_latency)
        self.at(self.now + latency, lambda: self.answer(environment, record, permit, True))

    def latency(self, typical: float) -> float:
        return typical * (1.0 + self.rng.uniform(-self.config.jitter, self.config.jitter))

    def note_admitted(self) -> None:
        if self.result.first_full_rate is not None:
            return
        self.admitted_window.append(self.now)
        while self.admitted_window[0] < self.now - 1.0:
            self.admitted_window.popleft()
        if len(self.admitted_window) >= 0.9 * self.config.rate:
            self.result.first_full_rate = self.now

    def answer(self, environment: int, record: Record, permit: Permit, admitted: bool) -> None:
        limiter = self.limiters[environment]
        if admitted:
            limiter.release(permit, "admitted")
            self.result.creates[record.vault] += 1
            self.ledger.complete(f"vault-{record.vault}", StoredOutcome("created"), now=self.now)
            self.result.wall = max(self.result.wall, self.now)
            self.at(
                self.now + self.latency(self.config.ledger_latency),
                lambda: self.record_done(environment, record),
            )
        elif self.strategy == "requeue":
            limiter.release(permit, "throttled")
            self.ask(environment, record)
        else:
            limiter.release(permit, "throttled")
            self.failed_call(environment, record)
        self.pump(environment)

    def failed_call(self, environment: int, record: Record) -> None:
        """A throttled call (the gateway's 429, or no permit in time): back off, or hand the record back.

        As in CheckpointService, a throttle spends none of the request's attempts (the call never reached
        CBR, so sending it again cannot create twice): only the invocation's deadline bounds the retries.
        """
        invocation = self.invocations[environment]
        assert invocation is not None
        record.attempt += 1
        delay = self.policy.next_delay(
            record.attempt,
            retry_after=None,
            now=self.now,
            deadline=invocation.deadline,
            rng=self.rng,
            spent=0,
        )
        if delay is None:
            self.ledger.release(f"vault-{record.vault}", now=self.now, reconcile_since=None)
            record.handed_back = True
            self.result.handed_back += 1
            self.record_done(environment, record)
            return
        self.result.backoff_seconds += delay
        self.at(self.now + delay, lambda: self.ask(environment, record))


def simulate(config: FleetConfig, strategy: Strategy = "adaptive") -> FleetResult:
    return Fleet(config, strategy).run()


TARGET_WALL_OVER_FLOOR = 1.1
TARGET_THROTTLED_PER_CHECKPOINT = 0.1

HEADER = (
    f"{'vaults':>7} {'envs':>4} {'strategy':<8} {'wall s':>7} {'x floor':>7} {'429/ckpt':>8} "
    f"{'handed back':>11} {'once':>4} {'targets':>7} | {'full rate at s':>14} "
    f"{'unused capacity s: queued/redelivery/tail':>41} {'backoff s/ckpt':>14} {'paced s/ckpt':>12}"
)

LEGEND = """
wall: virtual seconds until the last vault's create; floor: vaults / rate (the gateway's best).
handed back: records returned to the queue (partial batch response): out of the invocation's time (a
throttle spends none of a request's attempts).
targets: wall <= 1.1 x floor, <= 0.1 throttled answers per checkpoint, each vault created once.
Where the time goes: the gateway's capacity left unused (seconds of its rate), split by what the fleet
was doing then: records still queued (ramp-up, pacing below the limit, backoffs, batch gaps), waiting
for handed-back records to become visible again (visibility timeout), or finishing the last batches.
full rate at: when the fleet first made 90 % of the rate over one second. backoff / paced: seconds a
request spent in the retry policy's sleeps / waiting for its environment's limiter, per checkpoint."""


def meets_targets(result: FleetResult) -> bool:
    return (
        result.each_vault_once
        and result.wall_over_floor <= TARGET_WALL_OVER_FLOOR
        and result.throttled_per_checkpoint <= TARGET_THROTTLED_PER_CHECKPOINT
    )


def row(result: FleetResult) -> str:
    unused_by_phase = result.unused_capacity
    full = "never" if result.first_full_rate is None else f"{result.first_full_rate:.1f}"
    checkpoints = max(1, result.checkpoints)
    once = "yes" if result.each_vault_once else "NO"
    unused = " / ".join(f"{unused_by_phase[phase]:.1f}" for phase in ("queued", "redelivery", "tail"))
    return (
        f"{result.config.vaults:>7} {result.config.environments:>4} {result.strategy:<8} "
        f"{result.wall:>7.1f} {result.wall_over_floor:>7.3f} {result.throttled_per_checkpoint:>8.3f} "
        f"{result.handed_back:>11} {once:>4} "
        f"{'met' if meets_targets(result) else 'missed':>7} | {full:>14} {unused:>41} "
        f"{result.backoff_seconds / checkpoints:>14.3f} {result.pacing_seconds / checkpoints:>12.3f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; exit status 1 if any vault was not created exactly once."""
    parser = argparse.ArgumentParser(
        description="A fleet of execution environments against CBR's rate limit."
    )
    parser.add_argument("--vaults", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--environments", type=int, nargs="+", default=[5, 20, 50])
    defaults = FleetConfig()
    parser.add_argument("--rate", type=float, default=defaults.rate, help="creates/s the gateway allows")
    parser.add_argument("--burst", type=float, default=defaults.burst, help="the gateway's bucket size")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    arguments = parser.parse_args(argv)
    print(f"gateway: {arguments.rate:g} creates/s, burst {arguments.burst:g}; seed {arguments.seed}")
    print(HEADER)
    broken = 0
    for vaults in arguments.vaults:
        for environments in arguments.environments:
            config = FleetConfig(
                vaults=vaults,
                environments=environments,
                rate=arguments.rate,
                burst=arguments.burst,
                seed=arguments.seed,
            )
            for strategy in arguments.strategies:
                result = simulate(config, strategy)
                print(row(result), flush=True)
                broken += not result.each_vault_once
    print(LEGEND)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
