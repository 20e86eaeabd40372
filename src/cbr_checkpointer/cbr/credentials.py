"""Huawei Cloud credentials: AK/SK (optionally temporary, with a security token) or an IAM password.

Building credentials makes their secrets known to redaction, so no log line or error message shows them.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr

from cbr_checkpointer.redaction import remember
from cbr_checkpointer.values import value


def _check_text(field: str, value: str | SecretStr | None) -> None:
    """Refuse a control character in a credential: each goes into an HTTP header or IAM's request, where
    one (a trailing newline in a security token, say) is refused far from its cause. The error names the
    field, never its value."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text is not None and control_character_in(text):
        raise ValueError(f"{field} holds a control character (a trailing newline?)")


@value
class AkSkCredentials:
    """An access key pair; `security_token` is set for temporary credentials (sent as X-Security-Token)."""

    ak: str
    sk: SecretStr
    security_token: SecretStr | None = None

    def __post_init__(self) -> None:
        for field in ("ak", "sk", "security_token"):
            _check_text(field, getattr(self, field))
        remember(self.sk, self.security_token)


@value
class PasswordCredentials:
    """An IAM user's password, exchanged for a project-scoped token."""

    user_name: str
    password: SecretStr
    domain_name: str

    def __post_init__(self) -> None:
        for field in ("user_name", "password", "domain_name"):
            _check_text(field, getattr(self, field))
        remember(self.password)


class CredentialsProvider(Protocol):
    def get(self) -> AkSkCredentials | PasswordCredentials:
        """The credentials to use now (may be cached by the provider)."""
        ...

    def refresh(self) -> None:
        """Forget cached credentials so the next `get` reads them again (after a rotation)."""
        ...


class StaticCredentials:
    """Credentials fixed for the life of the process (environment variables, tests)."""

    def __init__(self, credentials: AkSkCredentials | PasswordCredentials) -> None:
        self._credentials = credentials

    def get(self) -> AkSkCredentials | PasswordCredentials:
        return self._credentials

    def refresh(self) -> None:
        """Nothing to re-read."""

    def __repr__(self) -> str:
        return f"StaticCredentials({self._credentials!r})"


def secrets_of(credentials: AkSkCredentials | PasswordCredentials) -> tuple[str, ...]:
    """The secret strings inside `credentials`, for masking them in error messages."""
    if isinstance(credentials, AkSkCredentials):
        token = credentials.security_token
        return (credentials.sk.get_secret_value(),) + (() if token is None else (token.get_secret_value(),))
    return (credentials.password.get_secret_value(),)


def control_character_in(value: str) -> bool:
    """Whether `value` holds a control character (a pasted newline): no HTTP header may carry one."""
    return any(ord(character) < 0x20 or ord(character) == 0x7F for character in value)
