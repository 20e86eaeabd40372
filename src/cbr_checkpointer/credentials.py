"""Huawei credentials from a Secrets Manager secret, cached and re-read after rotation."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from pydantic import SecretStr

from cbr_checkpointer.aws import AwsError, AwsJsonClient
from cbr_checkpointer.cbr import AkSkCredentials, CbrError, PasswordCredentials
from cbr_checkpointer.domain import ErrorInfo


class CredentialsError(CbrError):
    """The secret could not be read or holds no usable credentials (the message never quotes it).

    It is a CbrError of kind "auth" because it surfaces inside a CBR call: the service then treats
    a throttled Secrets Manager as transient and a missing or malformed secret as a permanent failure.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(
            ErrorInfo(kind="auth", message=message, code="CredentialsUnavailable", retryable=retryable)
        )


def parse_secret(secret_id: str, secret_string: str) -> AkSkCredentials | PasswordCredentials:
    """`{"ak","sk"[,"security_token"]}` or `{"user_name","password","domain_name"}`."""
    try:
        document = json.loads(secret_string)
    except ValueError:
        raise CredentialsError(f"secret {secret_id} is not a JSON object") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"secret {secret_id} is not a JSON object")
    if document.get("ak") and document.get("sk"):
        token = document.get("security_token")
        return AkSkCredentials(
            ak=str(document["ak"]),
            sk=SecretStr(str(document["sk"])),
            security_token=SecretStr(str(token)) if token else None,
        )
    if document.get("user_name") and document.get("password") and document.get("domain_name"):
        return PasswordCredentials(
            user_name=str(document["user_name"]),
            password=SecretStr(str(document["password"])),
            domain_name=str(document["domain_name"]),
        )
    raise CredentialsError(
        f"secret {secret_id} must hold either ak+sk[+security_token] or user_name+password+domain_name"
    )


class SecretCredentials:
    """Credentials read from Secrets Manager, cached for `ttl_seconds`, re-read at once after `refresh()`."""

    def __init__(
        self,
        secrets: AwsJsonClient,
        secret_id: str,
        *,
        ttl_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secrets = secrets
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
        try:
            answer = self._secrets.call("GetSecretValue", {"SecretId": self._secret_id})
        except AwsError as error:
            raise CredentialsError(
                f"cannot read secret {self._secret_id}: {error.code}", retryable=error.retryable
            ) from None
        secret_string = answer.get("SecretString")
        if not isinstance(secret_string, str):
            raise CredentialsError(f"secret {self._secret_id} has no SecretString")
        return parse_secret(self._secret_id, secret_string)
