"""The one retry policy, on a fake clock: backoff with full jitter, Retry-After, attempts and the deadline."""

from __future__ import annotations

import random

import pytest
from tests.fakes import FakeClock, HighestJitter

from cbr_checkpointer.retry import Deadline, Retrier, RetryPolicy

NOW = 1_800_000_000.0


class Lowest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def test_the_bound_doubles_from_the_base_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=8.0)

    delays = [policy.delay(attempt, None, HighestJitter()) for attempt in range(1, 7)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_full_jitter_spreads_pauses_over_the_whole_range() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    rng = random.Random(7)

    delays = [policy.delay(2, None, rng) for _ in range(500)]

    assert all(0.0 <= delay <= 2.0 for delay in delays)
    # Full jitter, not "equal jitter": pauses near zero and near the bound both happen.
    assert min(delays) < 0.2
    assert max(delays) > 1.8


def test_retry_after_longer_than_the_jitter_wins() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)

    assert policy.delay(1, 3.0, Lowest()) == 3.0
    assert policy.delay(1, 0.1, HighestJitter()) == 1.0


def test_next_delay_gives_up_once_every_attempt_is_spent() -> None:
    policy = RetryPolicy(max_attempts=3)

    allowed = [
        policy.next_delay(attempt, retry_after=None, now=NOW, deadline=None, rng=Lowest())
        for attempt in (1, 2, 3, 4)
    ]

    assert allowed == [0.0, 0.0, None, None]


def test_next_delay_never_reaches_into_the_safety_margin() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, max_delay=8.0, safety_margin=5.0)
    deadline = NOW + 7.0  # 2 s of room before the margin

    fits = policy.next_delay(1, retry_after=None, now=NOW, deadline=deadline, rng=HighestJitter())
    too_long = policy.next_delay(2, retry_after=None, now=NOW, deadline=deadline, rng=HighestJitter())
    retry_after_too_long = policy.next_delay(1, retry_after=2.5, now=NOW, deadline=deadline, rng=Lowest())

    assert fits == 2.0
    assert too_long is None  # 4 s would end 2 s inside the margin
    assert retry_after_too_long is None


def test_past_the_deadline_not_even_a_zero_pause_is_allowed() -> None:
    policy = RetryPolicy(safety_margin=5.0)

    assert policy.next_delay(1, retry_after=None, now=NOW, deadline=NOW + 4.0, rng=Lowest()) is None


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"base_delay": -1.0}, "base_delay"),
        ({"max_delay": -0.5}, "max_delay"),
        ({"safety_margin": -1.0}, "safety_margin"),
    ],
)
def test_a_bad_field_is_refused_by_name(fields: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        RetryPolicy(**fields)  # type: ignore[arg-type]


def test_a_retrier_sleeps_the_pause_and_stops_at_the_attempt_bound() -> None:
    time = FakeClock(NOW)
    retrier = Retrier(RetryPolicy(max_attempts=4), clock=time, rng=HighestJitter())

    answers = [retrier.pause(attempt) for attempt in (1, 2, 3, 4)]

    assert answers == [True, True, True, False]
    assert time.slept == [1.0, 2.0, 4.0]


def test_a_retrier_reads_the_deadline_as_it_is_now() -> None:
    time = FakeClock(NOW)
    deadline = Deadline()
    retrier = Retrier(
        RetryPolicy(max_attempts=10, base_delay=0.5, safety_margin=5.0),
        deadline=deadline,
        clock=time,
        rng=HighestJitter(),
    )

    deadline.set(NOW + 10.0)  # an invocation with 5 s to spend on pauses
    spent = [retrier.pause(attempt) for attempt in (1, 2, 3)]
    assert spent == [True, True, False]  # 1 s and 2 s fit; 4 s more would end 2 s inside the margin
    assert time.slept == [1.0, 2.0]

    deadline.set(time.now() + 100.0)  # the next invocation of the same environment
    assert retrier.pause(3) is True


def test_without_a_deadline_attempts_alone_bound_the_retries() -> None:
    time = FakeClock(NOW)
    retrier = Retrier(RetryPolicy(max_attempts=2), clock=time, rng=Lowest())

    assert retrier.pause(1, retry_after=600.0) is True
    assert time.slept == [600.0]
    assert retrier.pause(2) is False
