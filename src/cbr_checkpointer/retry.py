"""The one retry policy: exponential backoff with full jitter, bounded by attempts and by the deadline.

Every retry in the function goes through it: CBR creates (the service), every AWS call (the AWS JSON
client), the entries a partial batch left behind, and the secrets extension. A pause honours the
server's `Retry-After`, and no pause is taken that would end past the invocation's deadline less a
safety margin (the time kept to record and publish what happened).
"""

from __future__ import annotations

import math
import random
import time
from datetime import datetime
from email.utils import parsedate_to_datetime

from cbr_checkpointer.ports import Clock, SystemClock
from cbr_checkpointer.values import value


@value
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by the invocation's deadline.

    `max_attempts` counts every attempt, the first included; `safety_margin` is the time before the
    deadline that no pause may reach into.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    safety_margin: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        for name in ("base_delay", "max_delay", "safety_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The pause after failed attempt number `attempt` (1 is the first): uniform in
        [0, min(max_delay, base_delay * 2^attempt)], or the server's `Retry-After` when that is longer."""
        jittered = rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        return max(jittered, retry_after or 0.0)

    def next_delay(
        self,
        attempt: int,
        *,
        retry_after: float | None,
        now: float,
        deadline: float | None,
        rng: random.Random,
        spent: int | None = None,
    ) -> float | None:
        """The pause before trying again after failed attempt number `attempt`, or None to give up:
        every attempt is spent, or the pause would end past `deadline - safety_margin` (no deadline:
        attempts alone bound it). `spent` is how many of the attempts count against `max_attempts`
        when not all do (a caller may not count those a throttle refused); by default, all of them."""
        if (attempt if spent is None else spent) >= self.max_attempts:
            return None
        pause = self.delay(attempt, retry_after, rng)
        if deadline is not None and now + pause > deadline - self.safety_margin:
            return None
        return pause


class Deadline:
    """When the current invocation must be done (epoch seconds), or None when nothing bounds it.

    One per execution environment, shared by the clients built there; the entry point sets it at the
    start of every invocation (Lambda runs one invocation at a time in an environment).
    """

    def __init__(self, at: float | None = None) -> None:
        self.at = at

    def set(self, at: float | None) -> None:
        self.at = at


class Retrier:
    """The policy bound to a deadline, a clock (what time it is, and how to wait) and a source of jitter.

    `pause(attempt, retry_after)` is what a retry loop calls after a failed attempt: it sleeps and answers
    True when another attempt may be made, else answers False at once.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        deadline: Deadline | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.deadline = deadline or Deadline()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """The pause the policy allows after failed attempt number `attempt` now, or None to give up."""
        return self.policy.next_delay(
            attempt, retry_after=retry_after, now=self._clock.now(), deadline=self.deadline.at, rng=self._rng
        )

    def pause(self, attempt: int, retry_after: float | None = None) -> bool:
        """After failed attempt number `attempt`: sleep and answer True, or answer False to give up."""
        delay = self.next_delay(attempt, retry_after)
        if delay is None:
            return False
        self._clock.sleep(delay)
        return True


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP date); None if absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when: datetime = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)
