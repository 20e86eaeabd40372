"""The one home of redaction: the secrets this process holds, masked in every form they can take in text.

A secret is remembered from the moment the process holds it (credentials when they are built, IAM
tokens when they are issued). `redact` then masks it as it appears raw, stripped, escaped (a trailing
newline shows as `\\n` in the repr of a header value), repr'd as str or bytes, JSON-encoded
and URL-encoded, plus header values and signatures that are secret whatever their value.
`RedactSecrets` applies it to every log record; the error paths use it when they build messages.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

REDACTED = "***"
# Very short values would mangle ordinary words and are not worth hiding anyway.
MIN_SECRET_LENGTH = 4
# Enough for the credentials in use and the IAM tokens of a day; the oldest are forgotten first.
MAX_REMEMBERED_SECRETS = 64

# Headers whose value is secret whatever it is, in a header pair written out: (b'X-Auth-Token', b'...').
_SECRET_HEADER_VALUE = re.compile(
    r"""(b?['"](?:x-subject-token|x-auth-token|x-security-token|x-amz-security-token|authorization|"""
    r"""x-aws-parameters-secrets-token)['"],\s*b?(['"]))(?:(?!\2).)*""",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"(Signature=)[0-9A-Fa-f]{16,}")


def forms_of(secret: str) -> set[str]:
    """Every way `secret` may be written in a message, each long enough to be worth masking."""
    forms = {
        secret,
        secret.strip(),
        secret.encode("unicode_escape").decode("ascii"),
        repr(secret)[1:-1],
        repr(secret.encode("utf-8"))[2:-1],
        quote(secret),
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
    }
    # JSON-encoded, of the raw value and of each escaped form (a repr inside a JSON log line).
    forms |= {json.dumps(form)[1:-1] for form in list(forms)}
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _alternation(forms: Iterable[str]) -> re.Pattern[str] | None:
    # Longest first, so that a form never leaves the tail of a longer one it is a prefix of.
    ordered = sorted(set(forms), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


class SecretRegistry:
    """The secrets this process holds; thread-safe."""

    def __init__(self, capacity: int = MAX_REMEMBERED_SECRETS) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._secrets: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None

    def remember(self, *secrets: str | SecretStr | None) -> None:
        values = [_plain(secret) for secret in secrets]
        with self._lock:
            changed = False
            for value in values:
                if value is None or len(value) < MIN_SECRET_LENGTH:
                    continue
                if value in self._secrets:
                    self._secrets.move_to_end(value)
                    continue
                self._secrets[value] = None
                changed = True
                while len(self._secrets) > self._capacity:
                    self._secrets.popitem(last=False)
            if changed:
                self._pattern = _alternation(form for secret in self._secrets for form in forms_of(secret))

    def redact(self, text: str, also: Iterable[str] = ()) -> str:
        """`text` with every remembered secret, every one of `also`, secret header and signature masked."""
        extra = _alternation(form for secret in also for form in forms_of(secret))
        if extra is not None:
            text = extra.sub(REDACTED, text)
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _SECRET_HEADER_VALUE.sub(lambda match: match.group(1) + REDACTED, text)
        return _SIGNATURE.sub(r"\1" + REDACTED, text)


def _plain(secret: str | SecretStr | None) -> str | None:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


_registry = SecretRegistry()


def remember(*secrets: str | SecretStr | None) -> None:
    """Make `secrets` known to every later `redact` (and so to every log line)."""
    _registry.remember(*secrets)


def redact(text: str, also: Iterable[str] = ()) -> str:
    """`text` with every secret this process holds (and every one of `also`) masked, in any form."""
    return _registry.redact(text, also)


def redacted_value(value: Any) -> Any:
    """A log field's value with secrets masked: strings and containers walked, other objects as text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redacted_value(key): redacted_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redacted_value(item) for item in value]
    return redact(str(value))


_STANDARD_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RedactSecrets(logging.Filter):
    """Masks secrets in a log record in place: message and arguments, extra fields and exception.

    In place, so that every handler the record reaches afterwards (the runtime's, a test's) sees only
    the masked text. The exception is rendered once, masked, into `exc_text` and into the
    `exception`/`exception_name` fields Powertools writes, and the exception object is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                # A call whose arguments do not fit its format: keep both, masked, rather than raise.
                message = f"{record.msg} {record.args!r}"
            record.msg, record.args = redact(message), None
        else:
            record.msg = redacted_value(record.msg)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD_RECORD_FIELDS:
                setattr(record, name, redacted_value(value))
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exception = record.exc_text
            record.exception_name = record.exc_info[0].__name__
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
