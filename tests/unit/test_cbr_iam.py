"""TokenIssuer: caching, early renewal, single flight and refusals, over an in-memory transport."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from tests.fakes import AnsweringTransport

from cbr_checkpointer import http
from cbr_checkpointer.cbr import CbrError, PasswordCredentials, TokenIssuer

CREDENTIALS = PasswordCredentials("ops", SecretStr("the-password"), "acme")
HOUR = 3600.0


class FakeIam:
    """Issues tokens `t1`, `t2`, ... valid for `lifetime` seconds of the test's clock."""

    def __init__(self, clock: Callable[[], float], lifetime: float = 24 * HOUR, delay: float = 0.0) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.delay = delay
        self.requests: list[dict[str, object]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        time.sleep(self.delay)
        with self.lock:
            self.requests.append(json.loads(request.content))
            token = f"t{len(self.requests)}"
        expires = datetime.fromtimestamp(self.clock() + self.lifetime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return httpx.Response(
            201, headers={"X-Subject-Token": token}, json={"token": {"expires_at": expires}}
        )


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def issuer_for(iam: Callable[[httpx.Request], httpx.Response], clock: Clock) -> TokenIssuer:
    return TokenIssuer("https://iam.example.com", transport=AnsweringTransport(iam), clock=clock)


def test_the_request_is_a_project_scoped_password_token_request() -> None:
    seen: list[httpx.Request] = []
    clock = Clock()
    iam = FakeIam(clock)

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return iam(request)

    issuer_for(record, clock).token(CREDENTIALS, "project-1")
    (request,) = seen
    assert (request.method, str(request.url)) == (
        "POST",
        "https://iam.example.com/v3/auth/tokens?nocatalog=true",
    )
    assert json.loads(request.content) == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "ops", "password": "the-password", "domain": {"name": "acme"}}},
            },
            "scope": {"project": {"id": "project-1"}},
        }
    }


def test_a_token_is_reused_until_an_hour_before_it_expires() -> None:
    clock = Clock()
    iam = FakeIam(clock)
    issuer = issuer_for(iam, clock)
    assert issuer.token(CREDENTIALS, "p") == "t1"

    clock.now += 22.9 * HOUR
    assert issuer.token(CREDENTIALS, "p") == "t1"
    clock.now += 0.2 * HOUR
    assert issuer.token(CREDENTIALS, "p") == "t2"


@pytest.mark.parametrize(("lifetime", "reused_for"), [(HOUR, 0.5 * HOUR), (20 * 60.0, 5 * 60.0)])
def test_short_lived_tokens_are_renewed_with_at_least_fifteen_minutes_left(
    lifetime: float, reused_for: float
) -> None:
    clock = Clock()
    issuer = issuer_for(FakeIam(clock, lifetime=lifetime), clock)
    issuer.token(CREDENTIALS, "p")
    clock.now += reused_for - 1
    assert issuer.token(CREDENTIALS, "p") == "t1"
    clock.now += 2
    assert issuer.token(CREDENTIALS, "p") == "t2"


def test_tokens_are_cached_per_user_domain_and_project() -> None:
    clock = Clock()
    iam = FakeIam(clock)
    issuer = issuer_for(iam, clock)
    other_user = PasswordCredentials("dev", SecretStr("pw2"), "acme")
    tokens = {
        issuer.token(CREDENTIALS, "p1"),
        issuer.token(CREDENTIALS, "p2"),
        issuer.token(other_user, "p1"),
        issuer.token(CREDENTIALS, "p1"),
    }
    assert tokens == {"t1", "t2", "t3"}
    assert len(iam.requests) == 3


def test_ten_threads_needing_a_token_cause_one_iam_request() -> None:
    clock = Clock()
    iam = FakeIam(clock, delay=0.2)
    issuer = issuer_for(iam, clock)
    with ThreadPoolExecutor(max_workers=10) as pool:
        tokens = set(pool.map(lambda _: issuer.token(CREDENTIALS, "p"), range(10)))
    assert tokens == {"t1"}
    assert len(iam.requests) == 1


def test_invalidate_drops_only_the_refused_token() -> None:
    clock = Clock()
    issuer = issuer_for(FakeIam(clock), clock)
    issuer.token(CREDENTIALS, "p")
    issuer.invalidate("t1")
    assert issuer.token(CREDENTIALS, "p") == "t2"
    issuer.invalidate("t1")  # a late report about the old token keeps the new one
    assert issuer.token(CREDENTIALS, "p") == "t2"
    issuer.invalidate()
    assert issuer.token(CREDENTIALS, "p") == "t3"


@pytest.mark.parametrize(
    ("response", "retryable", "auth_failure"),
    [
        (
            httpx.Response(
                401, json={"error": {"code": 401, "message": "The username or password is wrong."}}
            ),
            False,
            True,
        ),
        (httpx.Response(400, json={"error": {"code": 400, "message": "Invalid scope"}}), False, False),
        (httpx.Response(429, text="slow down"), True, False),
        (httpx.Response(503, text="unavailable"), True, False),
        (httpx.Response(201, json={"token": {"expires_at": "2030-01-01T00:00:00Z"}}), False, False),
        (httpx.Response(201, headers={"X-Subject-Token": "t"}, json={"token": {}}), False, False),
    ],
)
def test_refusals_are_auth_errors_without_the_password(
    response: httpx.Response, retryable: bool, auth_failure: bool
) -> None:
    issuer = issuer_for(lambda _: response, Clock())
    with pytest.raises(CbrError) as caught:
        issuer.token(CREDENTIALS, "p")
    error = caught.value
    assert (error.info.kind, error.info.retryable, error.is_auth_failure, error.ambiguous) == (
        "auth",
        retryable,
        auth_failure,
        False,
    )
    assert "the-password" not in str(error)
    assert "the-password" not in repr(error)


def test_an_unreachable_iam_is_a_retryable_auth_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise http.ConnectError("connection refused")

    with pytest.raises(CbrError) as caught:
        issuer_for(refuse, Clock()).token(CREDENTIALS, "p")
    assert (caught.value.info.kind, caught.value.info.retryable) == ("auth", True)
    assert "ConnectError" in caught.value.info.message


def _projects_asked(iam: FakeIam) -> list[str]:
    scopes = [request["auth"] for request in iam.requests]
    return [str(scope["scope"]["project"]["id"]) for scope in scopes]  # type: ignore[index]


def test_the_cache_keeps_at_most_max_tokens_dropping_the_least_recently_used() -> None:
    clock = Clock()
    iam = FakeIam(clock)
    issuer = TokenIssuer(
        "https://iam.example.com", transport=AnsweringTransport(iam), clock=clock, max_tokens=3
    )
    for project in ("p1", "p2", "p3"):
        issuer.token(CREDENTIALS, project)
    issuer.token(CREDENTIALS, "p1")  # used again: now p2 is the least recently used
    issuer.token(CREDENTIALS, "p4")  # a fourth project pushes p2 out
    assert _projects_asked(iam) == ["p1", "p2", "p3", "p4"]

    for project in ("p1", "p3", "p4"):
        issuer.token(CREDENTIALS, project)
    assert len(iam.requests) == 4  # all three still cached
    issuer.token(CREDENTIALS, "p2")
    assert _projects_asked(iam)[-1] == "p2"
    assert len(iam.requests) == 5


def test_a_hundred_projects_leave_no_more_than_the_cap_behind() -> None:
    clock = Clock()
    iam = FakeIam(clock)
    issuer = TokenIssuer(
        "https://iam.example.com", transport=AnsweringTransport(iam), clock=clock, max_tokens=8
    )
    for index in range(100):
        issuer.token(CREDENTIALS, f"project-{index}")
    assert len(iam.requests) == 100
    # The last 8 are served from the cache; the 92 before them were dropped and are fetched again.
    for index in range(92, 100):
        issuer.token(CREDENTIALS, f"project-{index}")
    assert len(iam.requests) == 100
    issuer.token(CREDENTIALS, "project-0")
    assert len(iam.requests) == 101
    assert issuer._fetches == {}  # no per-key lock outlives its fetch
