"""A credentials secret is checked when it is read: a control character is refused by field name, unquoted."""

from __future__ import annotations

import json

import pytest

from cbr_checkpointer.cbr import AkSkCredentials, PasswordCredentials
from cbr_checkpointer.credentials import CredentialsError, parse_secret
from cbr_checkpointer.redaction import REDACTED, redact

SECRET_ID = "cbr/credentials"


def test_ak_sk_with_a_security_token_is_read_and_its_secrets_are_masked_from_then_on() -> None:
    text = json.dumps({"ak": "AKPARSED", "sk": "sk-parsed-value", "security_token": "st-parsed-value"})

    credentials = parse_secret(SECRET_ID, text)

    assert isinstance(credentials, AkSkCredentials)
    assert credentials.ak == "AKPARSED"
    assert redact("sk-parsed-value st-parsed-value AKPARSED") == f"{REDACTED} {REDACTED} AKPARSED"


def test_a_password_secret_is_read_and_its_password_masked_from_then_on() -> None:
    text = json.dumps({"user_name": "ops", "password": "pw-parsed-value", "domain_name": "acme"})

    credentials = parse_secret(SECRET_ID, text)

    assert isinstance(credentials, PasswordCredentials)
    assert (credentials.user_name, credentials.domain_name) == ("ops", "acme")
    assert redact("ops pw-parsed-value") == f"ops {REDACTED}"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"ak": "AKOK", "sk": "sk-pasted-value\n"}, "sk"),
        ({"ak": "AKOK\n", "sk": "sk-pasted-value"}, "ak"),
        ({"ak": "AKOK", "sk": "sk-pasted-value", "security_token": "st-pasted-value\n"}, "security_token"),
        ({"user_name": "ops", "password": "pw-pasted\tvalue", "domain_name": "acme"}, "password"),
        ({"user_name": "ops\r", "password": "pw-pasted-value", "domain_name": "acme"}, "user_name"),
        ({"user_name": "ops", "password": "pw-pasted-value", "domain_name": "acme\x7f"}, "domain_name"),
    ],
)
def test_a_field_with_a_control_character_is_refused_by_name_without_quoting_it(
    document: dict[str, str], field: str
) -> None:
    with pytest.raises(CredentialsError) as caught:
        parse_secret(SECRET_ID, json.dumps(document))

    error = caught.value
    assert f"secret {SECRET_ID}: {field} holds a control character" in error.info.message
    assert (error.info.kind, error.info.code, error.info.retryable) == (
        "auth",
        "CredentialsUnavailable",
        False,
    )
    for value in document.values():
        assert value.strip() not in str(error)
        assert value.strip() not in repr(error)
