"""How fast one execution environment calls CBR: an adaptive limit on calls in flight and on call starts.

CBR's API gateway throttles a whole account (HTTP 429, `APIGW.0308`) and does not say its limit. Each
execution environment finds its share by itself, the way TCP finds a link's capacity:

- **Calls in flight** start at `max_in_flight` (a batch goes out in one round) and follow AIMD: a
  throttle multiplies the limit by `decrease` (never below 1), every admitted call raises it by
  1/limit, i.e. by about one per round, up to `max_in_flight` again.
- **Call starts** are unpaced until the first throttle: concurrency alone cannot hold a fleet under the
  limit when calls are fast, as one call in flight per environment is already more than a large fleet's
  share. From the first throttle on, starts are spaced at least 1/rate apart. That throttle sets the
  rate to `decrease` x the rate calls were being started at; every later one multiplies it by
  `decrease` (never below `min_rate`). Every admitted call that the pacer held back raises the rate by
  `increase`/rate + `growth` x rate: the first term adds `increase` calls/s every second whatever the
  rate (environments squeezed to a small share climb back as fast as the others: fairness), the
  second brings a large share back within a few dozen calls (a small fleet regains the limit quickly).
  Successes the pacer did not hold back say nothing about a higher rate and leave it alone.
- **One overload counts once.** Every decrease starts a new epoch; a throttle on a call started in an
  earlier epoch was sent under the old limits and changes nothing.

Waiting never goes past the caller's time: a caller who cannot start in time gets no permit, sends
nothing, and hands its request back.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Literal, Protocol

from cbr_checkpointer.values import value

# A call either reached CBR (admitted), was refused by the gateway's throttle, or got no answer (unknown).
Verdict = Literal["admitted", "throttled", "unknown"]

# Chosen with devtools/fleet_sim.py (see `make simulate`).
DEFAULT_DECREASE = 0.8
DEFAULT_INCREASE = 0.005
DEFAULT_GROWTH = 0.01
# Never paced slower than this, so that a batch of 10 still fits in a couple of minutes.
MIN_RATE = 0.2
# Call starts are counted over this many seconds to find the rate of the first decrease.
MEASURE_SECONDS = 1.0
# Nothing announces a free slot to a blocked caller, so it looks again this often.
SLOT_POLL_SECONDS = 0.02


class Clock(Protocol):
    """Time for the limiter: seconds on any fixed origin, and a way to let it pass."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time: the monotonic clock, and sleeping the thread."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@value
class Permit:
    """Leave to start one call; give it back with `AdaptiveLimiter.release`."""

    started: float
    epoch: int
    # The pacer was the limit when this call started: its success says the current rate can go higher.
    paced: bool
    # Seconds the caller waited for this permit.
    waited: float = 0.0


class AdaptiveLimiter:
    """The call limits of one execution environment. Thread-safe; share one across all CBR calls."""

    def __init__(
        self,
        max_in_flight: int,
        *,
        clock: Clock | None = None,
        decrease: float = DEFAULT_DECREASE,
        increase: float = DEFAULT_INCREASE,
        growth: float = DEFAULT_GROWTH,
        min_rate: float = MIN_RATE,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, got {decrease}")
        if increase < 0:
            raise ValueError(f"increase must not be negative, got {increase}")
        if not 0 <= growth < 1:
            raise ValueError(f"growth must be in [0, 1), got {growth}")
        if min_rate <= 0:
            raise ValueError(f"min_rate must be positive, got {min_rate}")
        self._clock = clock or SystemClock()
        self._max_in_flight = max_in_flight
        self._decrease = decrease
        self._increase = increase
        self._growth = growth
        self._min_rate = min_rate
        self._lock = threading.Lock()
        self._limit = float(max_in_flight)
        self._in_flight = 0
        self._rate: float | None = None
        self._next_start = -math.inf
        self._epoch = 0
        self._recent_starts: deque[float] = deque()

    @property
    def limit(self) -> int:
        """Calls allowed in flight now."""
        with self._lock:
            return int(self._limit)

    @property
    def rate(self) -> float | None:
        """Call starts allowed per second now; None until the first throttle."""
        with self._lock:
            return self._rate

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def try_acquire(self) -> Permit | float:
        """A permit if a call may start now; otherwise the earliest time worth asking again
        (math.inf when only a call finishing can make room)."""
        now = self._clock.now()
        with self._lock:
            if self._in_flight >= int(self._limit):
                return math.inf
            paced = False
            if self._rate is not None:
                if now < self._next_start:
                    return self._next_start
                interval = 1.0 / self._rate
                paced = now <= self._next_start + interval
                self._next_start = max(self._next_start, now) + interval
            self._in_flight += 1
            self._recent_starts.append(now)
            while self._recent_starts[0] < now - MEASURE_SECONDS:
                self._recent_starts.popleft()
            return Permit(started=now, epoch=self._epoch, paced=paced)

    def acquire(self, within: float) -> Permit | None:
        """Wait up to `within` seconds for a permit; None if none comes in time (then send nothing)."""
        asked = self._clock.now()
        deadline = asked + within
        while True:
            answer = self.try_acquire()
            now = self._clock.now()
            if isinstance(answer, Permit):
                return Permit(answer.started, answer.epoch, answer.paced, waited=now - asked)
            if now >= deadline or (answer > deadline and answer != math.inf):
                return None
            wake = now + SLOT_POLL_SECONDS if answer == math.inf else answer
            self._clock.sleep(min(wake, deadline) - now)

    def release(self, permit: Permit, verdict: Verdict) -> None:
        """Give a permit back, saying how the call went."""
        now = self._clock.now()
        with self._lock:
            self._in_flight -= 1
            if verdict == "admitted":
                self._limit = min(float(self._max_in_flight), self._limit + 1.0 / self._limit)
                if permit.paced and self._rate is not None:
                    self._rate += self._increase / self._rate + self._growth * self._rate
            elif verdict == "throttled" and permit.epoch == self._epoch:
                self._epoch += 1
                self._limit = max(1.0, self._limit * self._decrease)
                if self._rate is None:
                    starts = sum(1 for started in self._recent_starts if started >= now - MEASURE_SECONDS)
                    self._rate = starts / MEASURE_SECONDS
                self._rate = max(self._min_rate, self._rate * self._decrease)
                self._next_start = max(self._next_start, now + 1.0 / self._rate)
