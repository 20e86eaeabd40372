"""CBR_CREDENTIALS_SECRET read through the Parameters and Secrets Lambda Extension, else GetSecretValue.

The extension is faked by a tiny HTTP server on loopback that checks the token header as the real one
does; the API fallback is moto. A closed loopback port stands for "no layer attached".
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from pydantic import SecretStr
from tests.fakes import FakeClock

from cbr_checkpointer import http
from cbr_checkpointer.aws import AwsJsonClient, aws_json_client
from cbr_checkpointer.cbr import AkSkCredentials, PasswordCredentials
from cbr_checkpointer.credentials import (
    EXTENSION_AUTH_HEADER,
    EXTENSION_RETRY,
    CredentialsError,
    SecretCredentials,
    SecretsExtension,
)
from cbr_checkpointer.handler import lambda_handler
from cbr_checkpointer.local_context import LocalContext
from cbr_checkpointer.retry import Retrier
from cbr_checkpointer.tls import trusting_no_one
from devtools.sandbox import AWS_TEST_CREDENTIALS, IAM_USER, REGION, SECOND_VAULT_ID, Sandbox

SECRET_ID = "cbr-checkpointer/huawei"
SESSION_TOKEN = "session-token-never-logged"
NOW = 1_800_000_000.0
FROM_EXTENSION = {"ak": "AK-FROM-EXTENSION", "sk": "sk-from-extension-never-logged"}
FROM_API = {"ak": "AK-FROM-API", "sk": "sk-from-api-never-logged"}


class FakeExtension:
    """`GET /secretsmanager/get?secretId=` with the token header, as the AWS layer serves it."""

    def __init__(self, secrets: dict[str, str], token: str = SESSION_TOKEN) -> None:
        self.secrets = secrets
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self.failures: list[int] = []  # statuses answered (in order) before the real answer
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                secret_id = parse_qs(url.query).get("secretId", [""])[0]
                fake.requests.append({"path": url.path, "secret_id": secret_id})
                token = self.headers.get(EXTENSION_AUTH_HEADER)
                if token is None:
                    self._answer(401, {"message": "missing token"})
                elif token != fake.token:
                    self._answer(403, {"message": "invalid token"})
                elif fake.failures:
                    self._answer(fake.failures.pop(0), {"message": "not ready"})
                elif url.path != "/secretsmanager/get" or secret_id not in fake.secrets:
                    self._answer(404, {"message": "not found"})
                else:
                    self._answer(200, {"Name": secret_id, "SecretString": fake.secrets[secret_id]})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeExtension:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class CountingTransport:
    """A real connection pool (to loopback) that counts what goes through it."""

    def __init__(self) -> None:
        self.inner = http.ConnectionPool(ssl_context=trusting_no_one(), max_connections=2)
        self.calls = 0

    def send(self, request: http.Request, timeout: http.Timeout) -> http.Response:
        self.calls += 1
        return self.inner.send(request, timeout)

    def close(self) -> None:
        self.inner.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def fake() -> Iterator[FakeExtension]:
    with FakeExtension({SECRET_ID: json.dumps(FROM_EXTENSION)}) as server:
        yield server


@pytest.fixture
def api_transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def api(moto: str, api_transport: CountingTransport) -> Iterator[AwsJsonClient]:
    """Secrets Manager (moto) holding the secret with a different value than the extension serves."""
    client = aws_json_client("secretsmanager", moto, REGION, AWS_TEST_CREDENTIALS, transport=api_transport)
    client.call("CreateSecret", {"Name": SECRET_ID, "SecretString": json.dumps(FROM_API)})
    api_transport.calls = 0
    yield client
    client.close()


def extension(
    port: int, token: str | None = SESSION_TOKEN, *, clock: FakeClock | None = None
) -> tuple[SecretsExtension, CountingTransport]:
    transport = CountingTransport()
    secret_token = None if token is None else SecretStr(token)
    retry = Retrier(EXTENSION_RETRY, clock=clock or FakeClock(NOW))
    return SecretsExtension(port, secret_token, retry=retry, transport=transport), transport


def ak_of(credentials: AkSkCredentials | PasswordCredentials) -> str:
    assert isinstance(credentials, AkSkCredentials)
    return credentials.ak


def test_credentials_come_from_the_extension_without_calling_the_api(
    fake: FakeExtension, api: AwsJsonClient, api_transport: CountingTransport
) -> None:
    ext, _ = extension(fake.port)
    credentials = SecretCredentials(api, SECRET_ID, extension=ext)

    assert ak_of(credentials.get()) == FROM_EXTENSION["ak"]
    assert api_transport.calls == 0
    assert fake.requests == [{"path": "/secretsmanager/get", "secret_id": SECRET_ID}]


def test_after_refresh_the_next_read_goes_through_the_extension_again(
    fake: FakeExtension, api: AwsJsonClient, api_transport: CountingTransport
) -> None:
    ext, _ = extension(fake.port)
    credentials = SecretCredentials(api, SECRET_ID, extension=ext)
    credentials.get()
    credentials.get()  # cached
    assert len(fake.requests) == 1

    credentials.refresh()
    assert ak_of(credentials.get()) == FROM_EXTENSION["ak"]

    assert len(fake.requests) == 2
    assert api_transport.calls == 0
    ext.close()


def test_without_the_extension_reads_go_to_the_api_and_the_port_is_probed_once(
    api: AwsJsonClient, api_transport: CountingTransport
) -> None:
    ext, probes = extension(closed_port())
    now = [0.0]
    credentials = SecretCredentials(api, SECRET_ID, extension=ext, ttl_seconds=10, clock=lambda: now[0])

    for _ in range(3):
        assert ak_of(credentials.get()) == FROM_API["ak"]
        credentials.refresh()
        now[0] += 60

    assert api_transport.calls == 3
    assert probes.calls == 1
    assert ext.available is False


def test_a_400_from_a_starting_extension_is_retried_once(
    fake: FakeExtension, api: AwsJsonClient, api_transport: CountingTransport
) -> None:
    fake.failures = [400]
    clock = FakeClock(NOW)
    ext, _ = extension(fake.port, clock=clock)

    assert ak_of(SecretCredentials(api, SECRET_ID, extension=ext).get()) == FROM_EXTENSION["ak"]
    assert len(fake.requests) == 2
    assert api_transport.calls == 0
    (pause,) = clock.slept
    assert 0.0 <= pause <= EXTENSION_RETRY.max_delay


def test_an_extension_failing_twice_falls_back_to_the_api_for_that_read_only(
    fake: FakeExtension, api: AwsJsonClient, api_transport: CountingTransport
) -> None:
    fake.failures = [503, 500]
    clock = FakeClock(NOW)
    ext, _ = extension(fake.port, clock=clock)
    credentials = SecretCredentials(api, SECRET_ID, extension=ext)

    assert ak_of(credentials.get()) == FROM_API["ak"]
    assert (len(fake.requests), api_transport.calls) == (2, 1)
    assert len(clock.slept) == EXTENSION_RETRY.max_attempts - 1

    credentials.refresh()
    assert ak_of(credentials.get()) == FROM_EXTENSION["ak"]
    assert (len(fake.requests), api_transport.calls) == (3, 1)


@pytest.mark.parametrize("token", ["wrong-token", None], ids=["wrong token", "no session token"])
def test_a_refused_token_falls_back_to_the_api(
    fake: FakeExtension, api: AwsJsonClient, api_transport: CountingTransport, token: str | None
) -> None:
    ext, probes = extension(fake.port, token)

    assert ak_of(SecretCredentials(api, SECRET_ID, extension=ext).get()) == FROM_API["ak"]
    assert api_transport.calls == 1
    # A wrong token is refused (403) once, not retried; without a token the extension is not asked.
    assert probes.calls == (1 if token else 0)


def test_a_wrong_token_gets_403_and_a_missing_header_401(fake: FakeExtension) -> None:
    url = f"http://127.0.0.1:{fake.port}/secretsmanager/get"
    with httpx.Client(trust_env=False) as client:
        assert client.get(url, params={"secretId": SECRET_ID}).status_code == 401
        wrong = client.get(url, params={"secretId": SECRET_ID}, headers={EXTENSION_AUTH_HEADER: "x"})
        assert wrong.status_code == 403


def test_nothing_secret_reaches_logs_or_errors(fake: FakeExtension, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    not_json = "not json: password=hunter2-never-logged"
    fake.secrets[SECRET_ID] = not_json
    unreachable = aws_json_client(
        "secretsmanager",
        f"http://127.0.0.1:{closed_port()}",
        REGION,
        AWS_TEST_CREDENTIALS,
        retry=Retrier(clock=FakeClock(NOW)),
    )
    errors = []

    # The extension serves a malformed secret: the error names the secret id, not its text
    ext, _ = extension(fake.port)
    with pytest.raises(CredentialsError) as malformed:
        SecretCredentials(unreachable, SECRET_ID, extension=ext).get()
    errors.append(malformed.value)

    # The extension fails twice, then the API cannot be reached
    fake.secrets[SECRET_ID] = json.dumps(FROM_EXTENSION)
    fake.failures = [500, 500]
    ext, _ = extension(fake.port)
    with pytest.raises(CredentialsError) as unavailable:
        SecretCredentials(unreachable, SECRET_ID, extension=ext).get()
    errors.append(unavailable.value)
    unreachable.close()

    texts = [caplog.text, *(str(error) for error in errors), *(repr(error) for error in errors)]
    texts += [str(error.info) for error in errors]
    for secret in (SESSION_TOKEN, "hunter2-never-logged", FROM_EXTENSION["sk"], FROM_API["sk"]):
        assert not [text for text in texts if secret in text], secret
    assert "secrets extension answered 500" in caplog.text


def test_the_handler_reads_the_secret_through_the_extension(sandbox: Sandbox) -> None:
    # Given a secret only the extension knows (moto has none by that name: the API would fail)
    secret_id = "only-in-the-extension"
    user = {"user_name": IAM_USER[0], "password": IAM_USER[1], "domain_name": IAM_USER[2]}
    sandbox.auth = "token"
    with (
        FakeExtension({secret_id: json.dumps(user)}, token="session-token") as fake,
        sandbox.configured(
            CBR_CREDENTIALS_SECRET=secret_id,
            PARAMETERS_SECRETS_EXTENSION_HTTP_PORT=str(fake.port),
            AWS_SESSION_TOKEN="session-token",
        ),
    ):
        # When the timer fires twice
        lambda_handler({"vault_id": SECOND_VAULT_ID, "idempotency_key": "ext-1"}, LocalContext())
        lambda_handler({"vault_id": SECOND_VAULT_ID, "idempotency_key": "ext-2"}, LocalContext())

    # Then both checkpoints were created with the IAM user the extension served, read once
    assert len(sandbox.emulator.created) == 2
    assert sandbox.emulator.token_requests == 1
    assert fake.requests == [{"path": "/secretsmanager/get", "secret_id": secret_id}]
    assert [e["detail-type"] for e in sandbox.published_events()] == ["CBR Checkpoint Created"] * 2
