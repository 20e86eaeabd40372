"""Idempotency keys and the names derived from them.

A key names one request in the ledger: at most one checkpoint is made per key. Keys come from three
places, and each has a namespace of its own, so that no request can name another's record:

- `u:<key>`: a key the sender chose, the envelope's `idempotency_key`: 1-256 printable ASCII
  characters without spaces and without `#` (`USER_KEY_RULE`). It is the sender's to reuse: the
  same key with another request is refused by the ledger.
- `d:<64 hex digits>`: a key derived from the trigger, the SHA-256 of what identifies it (a schedule's
  arn and firing time, an event's or message's id, the Lambda request id) and of the request's own
  content, canonical JSON. A retried trigger derives the same key; a different request (another
  vault, other resources, ...) derives another one, so nobody can compute and claim in advance the
  key of a timer's next firing with a request of their own. The items of a many-request are keyed
  from their parent's key and the item's index; the vaults of a selection from its key, the vault's id
  and the vault's request (project, region, parameters), so that a fan-out message, which names its
  selection's key, cannot claim a vault's key for any other request.
- the function's own records, the request's key followed by `#` and a suffix (the completion
  follow-up's `<key>#watch`, `<key>#watch#<n>`, `<key>#completion`). Neither namespace above can
  hold a `#`, so no request key is ever one of these.

Every key is short (at most 258 bytes) whatever the trigger carried: a schedule arn of 1,024 emoji
is hashed like any other, and stays far below DynamoDB's 2,048-byte limit on a partition key.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

USER_PREFIX = "u:"
DERIVED_PREFIX = "d:"
MAX_USER_KEY_LENGTH = 256
# Printable ASCII but space and '#': '#' separates the function's own records from a request's key.
_USER_KEY = rf"[!-\"$-~]{{1,{MAX_USER_KEY_LENGTH}}}"
USER_KEY_PATTERN = re.compile(_USER_KEY)
USER_KEY_RULE = (
    f"must be 1-{MAX_USER_KEY_LENGTH} printable ASCII characters without spaces or '#' "
    "('#' is reserved for the function's own records)"
)
KEY_PATTERN = re.compile(rf"{USER_PREFIX}{_USER_KEY}|{DERIVED_PREFIX}[0-9a-f]{{64}}")


def user_key(key: str) -> str:
    """The ledger key of a sender's `idempotency_key`, which must match `USER_KEY_PATTERN`."""
    if not USER_KEY_PATTERN.fullmatch(key):
        raise ValueError(USER_KEY_RULE)
    return USER_PREFIX + key


def derived_key(*parts: str | int | None, content: Any = None) -> str:
    """The key derived from what identifies a trigger (`parts`) and from the request's `content`.

    `content` must be a document that passed the limits check (valid Unicode, finite, bounded).
    """
    material = json.dumps([list(parts), content], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return DERIVED_PREFIX + hashlib.sha256(material.encode("ascii")).hexdigest()


def derived_name(key: str) -> str:
    """A valid, deterministic name for a request that gives none: how a reconciler finds its backup."""
    return f"cbr-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:20]}"
