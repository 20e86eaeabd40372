"""Huawei credentials from a Secrets Manager secret, cached and re-read after rotation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import SecretStr

from cbr_checkpointer import http
from cbr_checkpointer.aws import AwsError, AwsJsonClient
from cbr_checkpointer.cbr import AkSkCredentials, CbrError, PasswordCredentials
from cbr_checkpointer.cbr.credentials import control_character_in
from cbr_checkpointer.domain import ErrorInfo
from cbr_checkpointer.observability import SERVICE
from cbr_checkpointer.retry import Retrier, RetryPolicy

logger = Logger(service=SERVICE, child=True)

EXTENSION_AUTH_HEADER = "X-Aws-Parameters-Secrets-Token"
# The extension answers 400 while it is still starting (cold-start storms) and 5xx when Secrets
# Manager failed it: worth one more try after a short pause, then the API is asked instead.
_EXTENSION_RETRY_STATUSES = frozenset({400}) | frozenset(range(500, 600))
EXTENSION_RETRY = RetryPolicy(max_attempts=2, base_delay=0.025, max_delay=0.05, safety_margin=0.0)


class CredentialsError(CbrError):
    """The secret could not be read or holds no usable credentials (the message never quotes it).

    It is a CbrError of kind "auth" because it surfaces inside a CBR call, before anything is sent.
    It is always retryable: a missing, unreadable or malformed secret is the deployment's fault, not
    the request's, so the request goes back to its trigger (and is counted as requeued) instead of
    ending Failed in the ledger, where it would outlive the fix of the secret.
    """

    def __init__(self, message: str) -> None:
        super().__init__(
            ErrorInfo(kind="auth", message=message, code="CredentialsUnavailable", retryable=True)
        )


_CREDENTIAL_FIELDS = ("ak", "sk", "security_token", "user_name", "password", "domain_name")


def parse_secret(secret_id: str, secret_string: str) -> AkSkCredentials | PasswordCredentials:
    """`{"ak","sk"[,"security_token"]}` or `{"user_name","password","domain_name"}`."""
    try:
        document = json.loads(secret_string)
    except ValueError:
        raise CredentialsError(f"secret {secret_id} is not a JSON object") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"secret {secret_id} is not a JSON object")
    for field in _CREDENTIAL_FIELDS:
        value = document.get(field)
        if value is not None and not isinstance(value, str):
            raise CredentialsError(f"secret {secret_id}: {field} must be a string")
    try:
        return _credentials_of(secret_id, document)
    except ValueError as invalid:
        raise CredentialsError(f"secret {secret_id}: {invalid}") from None


def _credentials_of(secret_id: str, document: dict[str, str]) -> AkSkCredentials | PasswordCredentials:
    if document.get("ak") and document.get("sk"):
        token = document.get("security_token")
        return AkSkCredentials(
            ak=_field(secret_id, document, "ak"),
            sk=SecretStr(_field(secret_id, document, "sk")),
            security_token=SecretStr(_field(secret_id, document, "security_token")) if token else None,
        )
    if document.get("user_name") and document.get("password") and document.get("domain_name"):
        return PasswordCredentials(
            user_name=_field(secret_id, document, "user_name"),
            password=SecretStr(_field(secret_id, document, "password")),
            domain_name=_field(secret_id, document, "domain_name"),
        )
    raise CredentialsError(
        f"secret {secret_id} must hold either ak+sk[+security_token] or user_name+password+domain_name"
    )


def _field(secret_id: str, document: dict[str, Any], name: str) -> str:
    """`document[name]` as text, refused (by name, never quoting it) if it holds a control character."""
    value = str(document[name])
    if control_character_in(value):
        raise CredentialsError(
            f"secret {secret_id}: {name} holds a control character (a trailing newline?); "
            "no HTTP header may carry one"
        )
    return value


class SecretsExtension:
    """The AWS Parameters and Secrets Lambda Extension on loopback (`GET /secretsmanager/get`).

    `secret_string()` answers the secret's text, or None when the extension cannot give it: the caller
    then reads it through the signed GetSecretValue. When nothing listens on the port (the layer is not
    attached, or a local run) that is remembered for the life of the execution environment, so the port
    is probed once. Without a session token (never the case in Lambda) the extension is not asked at all.

    Nothing secret is logged: not the text, not the session token; log lines name the status only.
    """

    def __init__(
        self,
        port: int,
        session_token: SecretStr | None,
        *,
        retry: Retrier | None = None,
        transport: http.Transport | None = None,
    ) -> None:
        self._session_token = session_token
        self._retry = retry or Retrier(EXTENSION_RETRY)
        self._http = http.Client(
            f"http://127.0.0.1:{port}",
            timeout=http.timeout(2.0, connect=0.2),
            max_connections=2,
            max_keepalive_connections=1,
            transport=transport,
        )
        self.available = session_token is not None

    def secret_string(self, secret_id: str) -> str | None:
        if not self.available or self._session_token is None:
            return None
        attempt = 1
        while True:
            try:
                response = self._http.request(
                    "GET",
                    "/secretsmanager/get",
                    params={"secretId": secret_id},
                    headers={EXTENSION_AUTH_HEADER: self._session_token.get_secret_value()},
                )
            except http.ConnectError:
                # Nothing listens there: the layer is not attached. Do not ask again.
                self.available = False
                logger.info("secrets extension not reachable; reading secrets through the API")
                return None
            except http.TransportError as error:
                logger.warning(
                    "secrets extension failed (%s); reading the secret through the API", type(error).__name__
                )
                return None
            if response.status_code == 200:
                return _secret_string_of(response)
            if response.status_code in _EXTENSION_RETRY_STATUSES and self._retry.pause(attempt):
                attempt += 1
                continue
            logger.warning(
                "secrets extension answered %d; reading the secret through the API", response.status_code
            )
            return None

    def close(self) -> None:
        self._http.close()


def _secret_string_of(response: http.Response) -> str | None:
    try:
        document = response.json()
    except ValueError:
        logger.warning("secrets extension answered 200 without JSON; reading the secret through the API")
        return None
    secret_string = document.get("SecretString") if isinstance(document, dict) else None
    return secret_string if isinstance(secret_string, str) else None


class SecretCredentials:
    """Credentials read from Secrets Manager, cached for `ttl_seconds`, re-read at once after `refresh()`.

    With an `extension`, the text is read through the Parameters and Secrets Lambda Extension when it
    answers, else through the signed GetSecretValue. A read after `refresh()` goes through the
    extension again; the extension keeps its own cache (SECRETS_MANAGER_TTL, 300 s by default), so a
    rotated secret may be seen there only once that expires. (Newer extension versions are reported to
    accept a `refreshNow` query parameter; that is not documented where we could check it, so it is
    not sent.)
    """

    def __init__(
        self,
        secrets: AwsJsonClient,
        secret_id: str,
        *,
        extension: SecretsExtension | None = None,
        ttl_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secrets = secrets
        self._extension = extension
        self._secret_id = secret_id
        self._ttl_seconds = ttl_seconds
        self._clock = clock
        self._cached: AkSkCredentials | PasswordCredentials | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def get(self) -> AkSkCredentials | PasswordCredentials:
        with self._lock:
            if self._cached is None or self._clock() - self._read_at >= self._ttl_seconds:
                self._cached = self._read()
                self._read_at = self._clock()
            return self._cached

    def refresh(self) -> None:
        with self._lock:
            self._cached = None

    def _read(self) -> AkSkCredentials | PasswordCredentials:
        if self._extension is not None:
            secret_string = self._extension.secret_string(self._secret_id)
            if secret_string is not None:
                return parse_secret(self._secret_id, secret_string)
        try:
            answer = self._secrets.call("GetSecretValue", {"SecretId": self._secret_id})
        except AwsError as error:
            raise CredentialsError(f"cannot read secret {self._secret_id}: {error.code}") from None
        secret_string = answer.get("SecretString")
        if not isinstance(secret_string, str):
            raise CredentialsError(f"secret {self._secret_id} has no SecretString")
        return parse_secret(self._secret_id, secret_string)
