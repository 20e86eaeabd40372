"""Secrets that must never reach a log, an event or an error: the static ones and every signature and
token the run put on the wire, and a search for them in texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cbr_emulator import RecordedRequest
from devtools.sandbox import AWS_TEST_CREDENTIALS, HUAWEI_SK, IAM_USER


def signatures_and_tokens(requests: Iterable[RecordedRequest]) -> set[str]:
    """Every `Signature=` value and every token carried by these requests."""
    found: set[str] = set()
    for request in requests:
        authorization = request.headers.get("authorization", "")
        for part in authorization.split(","):
            name, _, value = part.strip().partition("=")
            if name.strip() == "Signature" and value:
                found.add(value.strip())
        for header in ("x-auth-token", "x-security-token"):
            if request.headers.get(header):
                found.add(request.headers[header])
    return found


def static_secrets() -> set[str]:
    """The sandbox's credentials: Huawei SK, IAM password, AWS secret key."""
    return {HUAWEI_SK, IAM_USER[1], AWS_TEST_CREDENTIALS.secret_access_key.get_secret_value()}


_WORD = re.compile(r"[A-Za-z0-9_\-]+")


def leaks(texts: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """The secrets (shown by their first characters only) that occur in any of the texts.

    A soak test sees thousands of signatures and megabytes of logs, so secrets made of word characters
    (signatures, tokens, the sandbox's keys) are looked up among the words of the texts, each window of a
    secret's length of each word; any other secret is searched for as a plain substring.
    """
    wanted = {secret for secret in secrets if len(secret) >= 8}
    wordy = {secret for secret in wanted if _WORD.fullmatch(secret)}
    lengths = sorted({len(secret) for secret in wordy})
    found: set[str] = set()
    for text in texts:
        found |= {secret for secret in wanted - wordy if secret in text}
        for word in set(_WORD.findall(text)):
            for length in lengths:
                if length > len(word):
                    break
                found |= {word[i : i + length] for i in range(len(word) - length + 1)} & wordy
    return sorted(f"{secret[:6]}… ({len(secret)} chars)" for secret in found)
