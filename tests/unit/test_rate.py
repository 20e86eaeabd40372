"""The adaptive call limiter: AIMD on calls in flight, adaptive pacing of starts, deadlines; a fake clock."""

from __future__ import annotations

import math
import threading

import pytest

from cbr_checkpointer.rate import MIN_RATE, SLOT_POLL_SECONDS, AdaptiveLimiter, Permit


class FakeClock:
    """Time that moves only when someone sleeps (or the test says so)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.time += seconds


def granted(answer: Permit | float) -> Permit:
    assert isinstance(answer, Permit), f"expected a permit, got {answer!r}"
    return answer


def take(limiter: AdaptiveLimiter, count: int) -> list[Permit]:
    return [granted(limiter.try_acquire()) for _ in range(count)]


def test_until_the_first_throttle_calls_start_at_once_up_to_max_in_flight() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(4, clock=clock)

    permits = take(limiter, 4)

    assert limiter.try_acquire() == math.inf
    assert limiter.rate is None
    limiter.release(permits[0], "admitted")
    granted(limiter.try_acquire())
    assert limiter.in_flight == 4


def test_one_overload_decreases_once_however_many_calls_it_throttles() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(10, clock=clock, decrease=0.7)
    permits = take(limiter, 10)
    clock.time += 0.05

    for permit in permits:
        limiter.release(permit, "throttled")

    # Once: 10 x 0.7, not 10 x 0.7^10; the pace starts at 0.7 x the 10 starts of the last second.
    assert limiter.limit == 7
    assert limiter.rate == pytest.approx(7.0)


def test_a_throttle_on_a_call_started_after_the_decrease_decreases_again() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(10, clock=clock, decrease=0.7)
    before = granted(limiter.try_acquire())
    limiter.release(before, "throttled")  # 1 start in the last second: the pace starts at 0.7/s
    assert limiter.rate == pytest.approx(0.7)
    clock.time += 10.0
    after = granted(limiter.try_acquire())

    limiter.release(after, "throttled")

    assert limiter.rate == pytest.approx(0.49)
    assert limiter.limit == 4  # 10 x 0.7 x 0.7 = 4.9


def test_after_a_throttle_starts_are_spaced_by_the_rate() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(10, clock=clock, decrease=0.7)
    start = clock.time
    for throttled in take(limiter, 5):
        limiter.release(throttled, "throttled")
    assert limiter.rate == pytest.approx(3.5)
    interval = 1 / 3.5

    # The first start waits one interval after the decrease, every next one another interval.
    starts = []
    for _ in range(3):
        permit = limiter.acquire(within=10.0)
        assert permit is not None
        starts.append(permit.started)
        limiter.release(permit, "unknown")

    assert starts == pytest.approx([start + interval, start + 2 * interval, start + 3 * interval])
    assert sum(clock.slept) == pytest.approx(3 * interval)


@pytest.mark.parametrize(("increase", "growth"), [(0.05, 0.0), (0.0, 0.05), (0.02, 0.01)])
def test_each_success_the_pacer_held_back_adds_increase_over_rate_plus_growth_times_rate(
    increase: float, growth: float
) -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(10, clock=clock, increase=increase, growth=growth)
    limiter.release(granted(limiter.try_acquire()), "throttled")
    expected = limiter.rate
    assert expected is not None

    for _ in range(3):
        permit = limiter.acquire(within=100.0)
        assert permit is not None
        assert permit.paced
        limiter.release(permit, "admitted")
        expected += increase / expected + growth * expected

    assert limiter.rate == pytest.approx(expected)


def test_successes_while_the_pacer_was_not_the_limit_leave_the_rate_alone() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(10, clock=clock)
    limiter.release(granted(limiter.try_acquire()), "throttled")
    rate = limiter.rate
    clock.time += 60.0  # idle far longer than one interval

    permit = granted(limiter.try_acquire())
    limiter.release(permit, "admitted")

    assert not permit.paced
    assert limiter.rate == rate


def test_after_the_first_throttle_admitted_calls_add_about_one_call_in_flight_per_round() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(4, clock=clock, decrease=0.7, min_rate=1000.0)
    limiter.release(granted(limiter.try_acquire()), "throttled")
    assert limiter.limit == 2  # 4 x 0.7 = 2.8

    # 2.8 -> 2.8 + 1/2.8 -> ... : three admitted calls reach 3.x, the cap 4 holds whatever follows.
    for expected in (3, 3, 3, 4, 4, 4, 4, 4):
        clock.time += 1.0
        limiter.release(granted(limiter.try_acquire()), "admitted")
        assert limiter.limit == expected


def test_the_limits_never_fall_below_one_call_and_the_minimum_rate() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(2, clock=clock)

    for _ in range(30):
        permit = limiter.acquire(within=10_000.0)
        assert permit is not None
        limiter.release(permit, "throttled")

    assert limiter.limit == 1
    assert limiter.rate == MIN_RATE


def test_an_unknown_verdict_frees_the_slot_and_changes_no_limit() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(3, clock=clock)
    permits = take(limiter, 3)

    for permit in permits:
        limiter.release(permit, "unknown")

    assert (limiter.in_flight, limiter.limit, limiter.rate) == (0, 3, None)


def test_acquire_gives_up_at_once_when_the_pace_allows_no_start_in_time() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(10, clock=clock, decrease=0.7)
    limiter.release(granted(limiter.try_acquire()), "throttled")  # 0.7/s: the next start is 1.43 s away

    assert limiter.acquire(within=1.0) is None
    assert clock.slept == []
    assert limiter.in_flight == 0


def test_acquire_waits_for_a_free_slot_but_never_past_its_time() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(1, clock=clock)
    held = granted(limiter.try_acquire())

    assert limiter.acquire(within=0.5) is None

    assert sum(clock.slept) == pytest.approx(0.5)
    assert max(clock.slept) <= SLOT_POLL_SECONDS + 1e-9
    limiter.release(held, "admitted")
    permit = limiter.acquire(within=0.5)
    assert permit is not None
    assert permit.waited == 0.0


def test_acquire_reports_how_long_the_caller_waited() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimiter(10, clock=clock, decrease=0.7)
    limiter.release(granted(limiter.try_acquire()), "throttled")

    permit = limiter.acquire(within=5.0)

    assert permit is not None
    assert permit.waited == pytest.approx(1 / 0.7)


def test_threads_never_hold_more_permits_than_the_limit() -> None:
    limiter = AdaptiveLimiter(3)
    most = 0
    seen = threading.Lock()
    held = 0

    def work() -> None:
        nonlocal most, held
        done = 0
        for _ in range(10_000_000):
            if done == 300:
                return
            answer = limiter.try_acquire()
            if not isinstance(answer, Permit):
                continue
            with seen:
                held += 1
                most = max(most, held)
            with seen:
                held -= 1
            limiter.release(answer, "admitted")
            done += 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert most <= 3
    assert limiter.in_flight == 0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": 2, "decrease": 1.0}, "decrease"),
        ({"max_in_flight": 2, "increase": -0.1}, "increase"),
        ({"max_in_flight": 2, "growth": 1.0}, "growth"),
        ({"max_in_flight": 2, "min_rate": 0.0}, "min_rate"),
    ],
)
def test_bad_settings_are_refused_by_name(options: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        AdaptiveLimiter(**options)  # type: ignore[arg-type]
