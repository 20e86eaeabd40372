"""What a credentials secret must hold, checked when it is read: a clear error naming the field, never
quoting a value, and never a permanent failure of the request that needed it."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from cbr_checkpointer.cbr import AkSkCredentials, PasswordCredentials
from cbr_checkpointer.credentials import CredentialsError, parse_secret

AKSK = {"ak": "AKIDEXAMPLE0123", "sk": "sk-very-secret-0123", "security_token": "token-very-secret-0123"}
PASSWORD = {"user_name": "cbr-bot", "password": "password-very-secret", "domain_name": "acme"}


@pytest.mark.parametrize(
    ("secret", "field"),
    [
        (AKSK | {"security_token": AKSK["security_token"] + "\n"}, "security_token"),
        (AKSK | {"sk": AKSK["sk"] + "\r"}, "sk"),
        (AKSK | {"ak": "AKID\tEXAMPLE"}, "ak"),
        (PASSWORD | {"password": PASSWORD["password"] + "\x00"}, "password"),
        (PASSWORD | {"user_name": "cbr-bot\x7f"}, "user_name"),
        (PASSWORD | {"domain_name": "acme\n"}, "domain_name"),
    ],
)
def test_a_control_character_in_a_credential_is_refused_by_field_never_quoted(
    secret: dict[str, str], field: str
) -> None:
    with pytest.raises(CredentialsError) as refused:
        parse_secret("cbr-credentials", json.dumps(secret))

    message = refused.value.info.message
    assert message.startswith(f"secret cbr-credentials: {field} holds a control character")
    for value in secret.values():
        assert value.strip() not in message
    assert (refused.value.info.code, refused.value.info.retryable) == ("CredentialsUnavailable", True)


def test_a_credential_that_is_not_a_string_is_refused_by_field() -> None:
    with pytest.raises(CredentialsError) as refused:
        parse_secret("cbr-credentials", json.dumps(AKSK | {"sk": 12345678}))

    assert refused.value.info.message == "secret cbr-credentials: sk must be a string"


def test_sound_credentials_are_read_as_they_are() -> None:
    aksk = parse_secret("s", json.dumps(AKSK))
    password = parse_secret("s", json.dumps(PASSWORD))

    assert isinstance(aksk, AkSkCredentials)
    assert aksk.security_token is not None
    assert aksk.security_token.get_secret_value() == AKSK["security_token"]
    assert isinstance(password, PasswordCredentials)
    assert password.password.get_secret_value() == PASSWORD["password"]


@pytest.mark.parametrize("text", ["not json", "[]", json.dumps({"ak": "only-half"})])
def test_a_malformed_secret_is_a_retryable_fault_of_the_deployment(text: str) -> None:
    with pytest.raises(CredentialsError) as refused:
        parse_secret("s", text)

    assert refused.value.info.retryable


def test_credentials_built_elsewhere_are_checked_too() -> None:
    with pytest.raises(ValueError, match=r"^security_token holds a control character"):
        AkSkCredentials("AKID", SecretStr("sk"), SecretStr("token\n"))
