"""The emulator's token bucket and its command-line options, without a socket."""

from __future__ import annotations

import pytest

from cbr_emulator import RateLimit
from cbr_emulator.__main__ import parse_arguments
from cbr_emulator.state import TokenBucket


class ManualClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_grants_the_burst_then_says_how_long_to_wait() -> None:
    clock = ManualClock()
    bucket = TokenBucket(RateLimit(4, 2), clock)

    granted = [bucket.take() for _ in range(3)]
    clock.now += 0.125  # half a token
    waiting = bucket.take()
    clock.now += 0.125
    refilled = bucket.take()

    assert granted == [0.0, 0.0, 0.25]
    assert waiting == pytest.approx(0.125)
    assert refilled == 0.0


def test_idle_time_never_fills_the_bucket_above_its_burst() -> None:
    clock = ManualClock()
    bucket = TokenBucket(RateLimit(10, 3), clock)
    clock.now += 3600

    assert [bucket.take() == 0.0 for _ in range(4)] == [True, True, True, False]


def test_a_clock_going_backwards_takes_no_token_away_and_adds_none() -> None:
    clock = ManualClock()
    bucket = TokenBucket(RateLimit(1, 1), clock)
    assert bucket.take() == 0.0
    clock.now -= 10

    assert bucket.take() == pytest.approx(1.0)
    clock.now += 1
    assert bucket.take() == 0.0


def test_invalid_rate_limits_are_refused_when_written() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimit(0)
    with pytest.raises(ValueError, match="rate"):
        RateLimit(float("inf"))
    with pytest.raises(ValueError, match="rate"):
        RateLimit(float("nan"))
    with pytest.raises(ValueError, match="burst"):
        RateLimit(5, 0)
    assert (RateLimit(2.5).capacity, RateLimit(0.2).capacity, RateLimit(2, 7).capacity) == (3, 1, 7)


def test_the_command_line_sets_the_create_rate_limit() -> None:
    assert parse_arguments([]).create_rate_limit is None
    assert parse_arguments(["--create-rate", "5"]).create_rate_limit == RateLimit(5)
    assert parse_arguments(
        ["--create-rate", "0.5", "--create-burst", "2", "--create-retry-after"]
    ).create_rate_limit == RateLimit(0.5, 2, retry_after=True)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--create-burst", "2"], "need --create-rate"),
        (["--create-retry-after"], "need --create-rate"),
        (["--create-rate", "0"], "rate must be a positive number"),
        (["--create-rate", "1", "--create-burst", "0"], "burst must be at least 1"),
    ],
)
def test_bad_rate_options_are_refused_by_name(
    arguments: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_arguments(arguments)

    assert complaint in capsys.readouterr().err
