"""CbrClient against the IAM + CBR emulator over loopback HTTP."""

from __future__ import annotations

import logging
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from cbr_checkpointer.cbr import (
    AkSkCredentials,
    CbrClient,
    CbrError,
    PasswordCredentials,
    StaticCredentials,
)
from cbr_checkpointer.rate import AdaptiveLimiter
from cbr_emulator import Emulator, Fault

pytestmark = pytest.mark.integration

PROJECT_ID = "0b6f1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
VAULT_ID = "3b5816b5-f29c-4172-9d9a-76c719a659ce"
MISSING_VAULT_ID = "00000000-0000-4000-8000-000000000000"
SERVERS = [
    "94eba8b2-acc9-4d82-badc-127144cc5526",
    "1d7b0a3c-5a51-4f6e-9d3e-2b7c1f7a9e01",
    "7c2e4f0a-3b1d-4e8a-9f5c-6d1a2b3c4d5e",
]
AK, SK = "AKEXAMPLE", "SKEXAMPLE-secret"
USER, PASSWORD, DOMAIN = "ops", "pa55-word-secret", "acme"
POOL_RACE_CREATES = 2000


class CountingCredentials:
    """A provider that counts refreshes (a rotation-aware provider would re-read its secret there)."""

    def __init__(self, credentials: AkSkCredentials | PasswordCredentials) -> None:
        self.credentials = credentials
        self.refreshes = 0

    def get(self) -> AkSkCredentials | PasswordCredentials:
        return self.credentials

    def refresh(self) -> None:
        self.refreshes += 1


@pytest.fixture(scope="module")
def emulator_session() -> Iterator[Emulator]:
    emulator = Emulator(
        project_id=PROJECT_ID, ak=AK, sk=SK, user_name=USER, password=PASSWORD, domain_name=DOMAIN
    )
    emulator.add_vault(VAULT_ID, [{"id": server} for server in SERVERS])
    with emulator:
        yield emulator


@pytest.fixture
def emu(emulator_session: Emulator) -> Emulator:
    emulator_session.reset()
    return emulator_session


def make_client(
    emu: Emulator, credentials: AkSkCredentials | PasswordCredentials | CountingCredentials, **options: Any
) -> CbrClient:
    provider = credentials if isinstance(credentials, CountingCredentials) else StaticCredentials(credentials)
    return CbrClient(emu.base_url, provider, iam_endpoint=emu.base_url, **options)


@pytest.fixture
def aksk_client(emu: Emulator) -> Iterator[CbrClient]:
    client = make_client(emu, AkSkCredentials(AK, SecretStr(SK)))
    yield client
    client.close()


@pytest.fixture
def token_client(emu: Emulator) -> Iterator[CbrClient]:
    client = make_client(emu, PasswordCredentials(USER, SecretStr(PASSWORD), DOMAIN))
    yield client
    client.close()


def body(vault_id: str = VAULT_ID, **parameters: object) -> dict[str, object]:
    return {"checkpoint": {"vault_id": vault_id, "parameters": {"incremental": True, **parameters}}}


def cbr_requests(emu: Emulator) -> list[int]:
    return [request.status for request in emu.requests if request.path != "/v3/auth/tokens"]


# --- auth -----------------------------------------------------------------------------------------


def test_token_auth_fetches_one_token_for_many_concurrent_creates(
    emu: Emulator, token_client: CbrClient
) -> None:
    # When 20 creates run at once on 8 threads with password credentials
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(
            pool.map(
                lambda index: token_client.create_checkpoint(PROJECT_ID, body(name=f"b{index}")), range(20)
            )
        )

    # Then all succeed and IAM was asked for a token exactly once
    assert len({checkpoint.id for checkpoint in created}) == 20
    assert all(checkpoint.status == "protecting" for checkpoint in created)
    assert emu.token_requests == 1
    assert all(request.authenticated for request in emu.requests)


def test_an_expired_token_is_renewed_once_and_the_call_succeeds(emu: Emulator) -> None:
    # Given a client holding a token that has since expired
    provider = CountingCredentials(PasswordCredentials(USER, SecretStr(PASSWORD), DOMAIN))
    client = make_client(emu, provider)
    client.create_checkpoint(PROJECT_ID, body())
    emu.expire_tokens()

    # When it creates again
    checkpoint = client.create_checkpoint(PROJECT_ID, body())
    client.close()

    # Then the API refused the old token once (APIGW.0307), a new one was fetched, and the create worked
    assert checkpoint.id == emu.created[-1]["id"]
    assert cbr_requests(emu) == [200, 401, 200]
    assert emu.token_requests == 2
    assert provider.refreshes == 1


def test_aksk_signatures_are_accepted_for_every_call(emu: Emulator, aksk_client: CbrClient) -> None:
    # When the client creates, shows and lists with AK/SK credentials
    created = aksk_client.create_checkpoint(PROJECT_ID, body(name="nightly", description="a b ü"))
    shown = aksk_client.show_checkpoint(PROJECT_ID, created.id)
    backups = aksk_client.list_backups(
        PROJECT_ID, vault_id=VAULT_ID, name="nightly", checkpoint_id=created.id
    )

    # Then every request carried a signature the emulator verified, and no token was fetched
    assert shown.id == created.id
    assert {backup["resource_id"] for backup in backups} == set(SERVERS)
    assert all(request.authenticated for request in emu.requests)
    assert all(request.headers["x-project-id"] == PROJECT_ID for request in emu.requests)
    assert emu.token_requests == 0


def test_temporary_credentials_send_a_signed_security_token(emu: Emulator) -> None:
    client = make_client(emu, AkSkCredentials(AK, SecretStr(SK), SecretStr("temporary-security-token")))
    client.create_checkpoint(PROJECT_ID, body())
    client.close()
    (request,) = emu.requests
    assert request.authenticated
    assert request.headers["x-security-token"] == "temporary-security-token"
    assert "x-security-token" in request.headers["authorization"]


def test_a_wrong_sk_fails_as_auth_after_exactly_one_retry(emu: Emulator) -> None:
    # Given credentials with the wrong secret key
    provider = CountingCredentials(AkSkCredentials(AK, SecretStr("wrong-secret-key")))
    client = make_client(emu, provider)

    # When it creates
    with pytest.raises(CbrError) as caught:
        client.create_checkpoint(PROJECT_ID, body())
    client.close()

    # Then the credentials were refreshed once, the call tried twice, and it failed for good as auth
    error = caught.value
    assert (error.info.kind, error.info.code, error.info.http_status) == ("auth", "APIGW.0301", 401)
    assert error.is_auth_failure
    assert not error.info.retryable
    assert not error.ambiguous
    assert error.info.request_id
    assert cbr_requests(emu) == [401, 401]
    assert provider.refreshes == 1
    assert emu.created == []


def test_a_wrong_password_fails_as_auth_without_leaking_it(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(emu, PasswordCredentials(USER, SecretStr("not-the-pa55word"), DOMAIN))
    with pytest.raises(CbrError) as caught:
        client.create_checkpoint(PROJECT_ID, body())
    client.close()

    error = caught.value
    assert (error.info.kind, error.info.http_status, error.is_auth_failure) == ("auth", 401, True)
    assert "username or password is wrong" in error.info.message
    assert emu.token_requests == 2  # refreshed once, asked again
    assert cbr_requests(emu) == []
    for text in (str(error), repr(error), caplog.text):
        assert "not-the-pa55word" not in text


# --- API errors -----------------------------------------------------------------------------------


def test_a_missing_vault_is_a_permanent_api_error(aksk_client: CbrClient) -> None:
    with pytest.raises(CbrError) as caught:
        aksk_client.create_checkpoint(PROJECT_ID, body(MISSING_VAULT_ID))
    error = caught.value
    assert (error.info.kind, error.info.code, error.info.http_status) == ("api", "BackupService.6105", 404)
    assert not error.info.retryable
    assert not error.ambiguous
    assert not error.is_auth_failure
    assert MISSING_VAULT_ID in error.info.message


def test_a_refused_parameter_is_a_validation_error_naming_the_field(aksk_client: CbrClient) -> None:
    with pytest.raises(CbrError) as caught:
        aksk_client.create_checkpoint(PROJECT_ID, body(name="not a valid name!"))
    error = caught.value
    assert (error.info.kind, error.info.code, error.info.http_status) == (
        "validation",
        "BackupService.9900",
        400,
    )
    assert "checkpoint.parameters.name" in error.info.message
    assert not error.info.retryable


def test_a_busy_resource_is_retryable_and_not_ambiguous(emu: Emulator, aksk_client: CbrClient) -> None:
    emu.mark_busy(SERVERS[0])
    with pytest.raises(CbrError) as caught:
        aksk_client.create_checkpoint(PROJECT_ID, body())
    error = caught.value
    assert (error.info.code, error.info.http_status) == ("BackupService.0002", 500)
    assert error.info.retryable
    assert not error.ambiguous


def test_retry_after_is_read_from_a_throttling_answer(emu: Emulator, aksk_client: CbrClient) -> None:
    emu.faults.append(
        Fault(
            status=429,
            body={
                "error_code": "APIGW.0308",
                "error_msg": "The throttling threshold has been reached",
                "request_id": "r1",
            },
            headers={"Retry-After": "7"},
        )
    )
    with pytest.raises(CbrError) as caught:
        aksk_client.create_checkpoint(PROJECT_ID, body())
    error = caught.value
    assert (error.info.kind, error.info.retryable, error.retry_after) == ("throttled", True, 7.0)
    assert not error.ambiguous
    assert emu.created == []


def test_an_http_date_retry_after_becomes_seconds(emu: Emulator, aksk_client: CbrClient) -> None:
    later = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    emu.faults.append(Fault(status=503, body=b"unavailable", headers={"Retry-After": later}))
    with pytest.raises(CbrError) as caught:
        aksk_client.create_checkpoint(PROJECT_ID, body())
    assert caught.value.retry_after is not None
    assert 20 < caught.value.retry_after <= 30


def test_a_200_with_an_unreadable_body_is_ambiguous(emu: Emulator, aksk_client: CbrClient) -> None:
    emu.faults.append(Fault(status=200, body={"checkpoint": {"id": "only-an-id"}}))
    with pytest.raises(CbrError) as caught:
        aksk_client.create_checkpoint(PROJECT_ID, body())
    error = caught.value
    assert (error.info.kind, error.info.retryable, error.ambiguous) == ("api", True, True)
    assert "checkpoint" in error.info.message


# --- transport ------------------------------------------------------------------------------------


def test_a_read_timeout_is_ambiguous(emu: Emulator) -> None:
    # Given a server that creates the checkpoint but answers after the client gave up
    emu.faults.append(Fault(delay=2.0))
    client = make_client(emu, AkSkCredentials(AK, SecretStr(SK)), read_timeout=0.3)

    with pytest.raises(CbrError) as caught:
        client.create_checkpoint(PROJECT_ID, body())
    client.close()

    error = caught.value
    assert (error.info.kind, error.info.retryable, error.ambiguous) == ("timeout", True, True)
    assert "ReadTimeout" in error.info.message


def test_a_connection_dropped_after_the_create_is_ambiguous(emu: Emulator, aksk_client: CbrClient) -> None:
    emu.faults.append(Fault(drop="after"))
    with pytest.raises(CbrError) as caught:
        aksk_client.create_checkpoint(PROJECT_ID, body())
    assert (caught.value.info.kind, caught.value.ambiguous) == ("network", True)
    assert len(emu.created) == 1  # it did take effect: reconciling is the only safe way on


def test_a_refused_connection_is_not_ambiguous() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{closed_port}"
    client = CbrClient(endpoint, StaticCredentials(AkSkCredentials(AK, SecretStr(SK))), iam_endpoint=endpoint)
    with pytest.raises(CbrError) as caught:
        client.create_checkpoint(PROJECT_ID, body())
    client.close()
    error = caught.value
    assert (error.info.kind, error.info.retryable, error.ambiguous) == ("network", True, False)


POOL_RACE_READ_TIMEOUT = 3.0


def test_thousands_of_creates_from_more_threads_than_connections_all_succeed_promptly(emu: Emulator) -> None:
    # Given a client allowed 4 connections to a keep-alive server that answers at once, and 8 threads
    # sharing it: the pool hands connections back and forth thousands of times (httpcore 1.0.9 sometimes
    # closed one it had just handed to a waiting request, which then failed or hung until its timeout).
    # The call limiter lets all 8 through, so that requests queue in the pool, not in the limiter.
    client = make_client(
        emu,
        AkSkCredentials(AK, SecretStr(SK)),
        max_connections=4,
        read_timeout=POOL_RACE_READ_TIMEOUT,
        limiter=AdaptiveLimiter(8),
    )
    failures: list[CbrError] = []
    durations: list[float] = []

    def create(_: int) -> None:
        started = time.monotonic()
        try:
            client.create_checkpoint(PROJECT_ID, body())
        except CbrError as error:
            failures.append(error)
        durations.append(time.monotonic() - started)

    # When 2,000 creates run from 8 threads
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(POOL_RACE_CREATES)))
    client.close()

    # Then every one succeeded, none hung on a connection until near its read timeout (how the race
    # showed when it did not fail at once), over no more than the 4 connections allowed
    hung = sum(duration > 0.9 * POOL_RACE_READ_TIMEOUT for duration in durations)
    assert (Counter(error.info.message for error in failures), hung) == (Counter(), 0)
    assert len(emu.created) == POOL_RACE_CREATES
    assert emu.connections_opened <= 4


def test_list_backups_follows_pages(emu: Emulator, aksk_client: CbrClient) -> None:
    # Given 35 checkpoints of 3 resources each: 105 backups, more than one page of 100
    for _ in range(35):
        aksk_client.create_checkpoint(PROJECT_ID, body(name="paged"))

    # When the client lists them
    backups = aksk_client.list_backups(PROJECT_ID, vault_id=VAULT_ID, name="paged")

    # Then it returns every one, once, having asked for two pages
    assert len({backup["id"] for backup in backups}) == 105
    pages = [request.query for request in emu.requests if request.path.endswith("/backups")]
    assert [page["offset"] for page in pages] == [["0"], ["100"]]


def test_secrets_never_reach_errors_or_logs(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token_client = make_client(emu, PasswordCredentials(USER, SecretStr(PASSWORD), DOMAIN))
    aksk_client = make_client(emu, AkSkCredentials(AK, SecretStr(SK), SecretStr("temporary-security-token")))
    errors: list[CbrError] = []
    for client in (token_client, aksk_client):
        client.create_checkpoint(PROJECT_ID, body())
        emu.expire_tokens()
        client.create_checkpoint(PROJECT_ID, body())
        try:
            client.create_checkpoint(PROJECT_ID, body(MISSING_VAULT_ID))
        except CbrError as error:
            errors.append(error)
        client.close()

    tokens = {
        request.headers["x-auth-token"] for request in emu.requests if "x-auth-token" in request.headers
    }
    signatures = {
        request.headers["authorization"].rsplit("Signature=", 1)[1]
        for request in emu.requests
        if "authorization" in request.headers
    }
    assert tokens
    assert signatures
    assert len(errors) == 2
    for secret in (PASSWORD, SK, "temporary-security-token", *tokens, *signatures):
        for text in (caplog.text, *(str(error) for error in errors), *(repr(error) for error in errors)):
            assert secret not in text
