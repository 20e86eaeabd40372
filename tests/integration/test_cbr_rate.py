"""CbrClient and its AdaptiveLimiter against the CBR emulator over loopback: what each answer does to the
limits, and that a call the limits cannot start in time is never sent. The limiter's clock is fake, so
pacing waits cost no wall time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from cbr_checkpointer.cbr import AkSkCredentials, CbrClient, CbrError, StaticCredentials
from cbr_checkpointer.rate import AdaptiveLimiter
from cbr_emulator import Emulator, Fault

pytestmark = pytest.mark.integration

PROJECT_ID = "0b6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
SERVER = "94eba8b2-acc9-4d82-badc-127144cc5526"
AK, SK = "AKEXAMPLE", "SKEXAMPLE-secret"
THROTTLED = {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"}
BODY = {"checkpoint": {"vault_id": VAULT_ID, "parameters": {"incremental": True}}}


class FakeClock:
    def __init__(self) -> None:
        self.time = 5000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += seconds


@pytest.fixture(scope="module")
def emulator_session() -> Iterator[Emulator]:
    emulator = Emulator(project_id=PROJECT_ID, ak=AK, sk=SK)
    emulator.add_vault(VAULT_ID, [{"id": SERVER}])
    with emulator:
        yield emulator


@pytest.fixture
def emu(emulator_session: Emulator) -> Emulator:
    emulator_session.reset()
    return emulator_session


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> AdaptiveLimiter:
    return AdaptiveLimiter(4, clock=clock, decrease=0.5)


@pytest.fixture
def client(emu: Emulator, limiter: AdaptiveLimiter) -> Iterator[CbrClient]:
    credentials = StaticCredentials(AkSkCredentials(AK, SecretStr(SK)))
    client = CbrClient(emu.base_url, credentials, iam_endpoint=emu.base_url, limiter=limiter)
    yield client
    client.close()


def test_a_throttled_answer_paces_the_next_call(
    emu: Emulator, client: CbrClient, limiter: AdaptiveLimiter, clock: FakeClock
) -> None:
    emu.faults.append(Fault(status=429, body=THROTTLED))

    with pytest.raises(CbrError) as caught:
        client.create_checkpoint(PROJECT_ID, BODY)
    assert caught.value.info.kind == "throttled"
    # One start in the last second, halved: the next start is two seconds after the throttle.
    assert limiter.rate == pytest.approx(0.5)
    assert clock.slept == []

    client.create_checkpoint(PROJECT_ID, BODY)

    assert sum(clock.slept) == pytest.approx(2.0)
    assert [request.status for request in emu.requests] == [429, 200]
    assert limiter.in_flight == 0


def test_a_call_the_limits_cannot_start_in_time_is_not_sent(
    emu: Emulator, client: CbrClient, limiter: AdaptiveLimiter, clock: FakeClock
) -> None:
    emu.faults.append(Fault(status=429, body=THROTTLED))
    with pytest.raises(CbrError):
        client.create_checkpoint(PROJECT_ID, BODY)

    # The next start is 2 s away, the invocation has 1.5 s left for this create.
    with pytest.raises(CbrError) as caught:
        client.create_checkpoint(PROJECT_ID, BODY, time_left=1.5)

    error = caught.value
    assert (error.info.kind, error.info.retryable, error.ambiguous) == ("throttled", True, False)
    assert "not sent" in error.info.message
    assert clock.slept == []
    assert [request.status for request in emu.requests] == [429]
    assert emu.created == []


def test_any_answer_but_a_throttle_counts_as_admitted(
    emu: Emulator, client: CbrClient, limiter: AdaptiveLimiter
) -> None:
    emu.faults.append(Fault(status=429, body=THROTTLED))
    with pytest.raises(CbrError):
        client.create_checkpoint(PROJECT_ID, BODY)
    emu.mark_busy(SERVER)  # 500 BackupService.0002: CBR answered, the gateway let the call through

    with pytest.raises(CbrError) as caught:
        client.create_checkpoint(PROJECT_ID, BODY)

    assert caught.value.info.code == "BackupService.0002"
    # The call waited for the pace, and its answer raised the pace: 0.5 + 0.005/0.5 + 0.01 x 0.5.
    assert limiter.rate == pytest.approx(0.515)


def test_a_call_without_an_answer_frees_its_slot_and_changes_no_limit(
    emu: Emulator, client: CbrClient, limiter: AdaptiveLimiter
) -> None:
    emu.faults.append(Fault(drop="before"))

    with pytest.raises(CbrError) as caught:
        client.create_checkpoint(PROJECT_ID, BODY)

    assert caught.value.info.kind == "network"
    assert (limiter.in_flight, limiter.limit, limiter.rate) == (0, 4, None)
