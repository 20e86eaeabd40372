"""How long to wait before trying a failed call again."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by the invocation's deadline."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    safety_margin: float = 5.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        jittered = rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))
        return max(jittered, retry_after or 0.0)
