"""The selection form: every vault of a project that matches some criteria, one checkpoint each.

`select` holds the criteria, all of which a vault must match (at least one is required):

- `tags`: `{key: value | [values]}`, 1-10 keys; a vault matches when it carries every key with one
  of the values given (an empty list: any value). CBR's rules for a tag filter apply: keys of 1-127
  characters, at most 10 distinct values per key of at most 255 characters each, no leading or
  trailing spaces (CBR would drop them), no control characters; a value starting with `*` matches
  by the rest of it (`*` alone is not allowed).
- `policy_id`: vaults bound to this policy (a UUID).
- `object_type`: vaults protecting this kind of resource (`OBJECT_TYPES`).
- `all`: `true`, every vault; useful alone, redundant beside other criteria.

A selection is expanded, once its vaults are listed, by `expansion.expand_selection`: one whole-vault
request per vault, each keyed from the selection's key and the vault's id, so that a retried trigger
that lists the same vaults makes the same requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cbr_checkpointer.domain import FieldError
from cbr_checkpointer.field_paths import join, show
from cbr_checkpointer.models import UUID_PATTERN

CRITERIA = ("tags", "policy_id", "object_type", "all")
# The vault filter of ListVaults.
OBJECT_TYPES = frozenset({"server", "disk", "turbo", "workspace", "vmware", "rds", "file"})
MAX_TAG_KEYS = 10
MAX_TAG_VALUES = 10
MAX_TAG_KEY_LENGTH = 127
MAX_TAG_VALUE_LENGTH = 255


def read_selector(select: Any, path: str) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """The criteria of `select`, normalized (each tag's values as a list), or what is wrong with them."""
    if not isinstance(select, Mapping):
        return None, [
            FieldError(path, "must be a JSON object of criteria: tags, policy_id, object_type, all")
        ]
    errors: list[FieldError] = []
    selector: dict[str, Any] = {}
    for criterion, value in select.items():
        where = join(path, criterion)
        if criterion == "tags":
            tags = _read_tags(value, where, errors)
            if tags is not None:
                selector["tags"] = tags
        elif criterion == "policy_id":
            if isinstance(value, str) and UUID_PATTERN.fullmatch(value):
                selector["policy_id"] = value
            else:
                errors.append(FieldError(where, "must be a policy id (a UUID)"))
        elif criterion == "object_type":
            if isinstance(value, str) and value in OBJECT_TYPES:
                selector["object_type"] = value
            else:
                errors.append(FieldError(where, f"must be one of {', '.join(sorted(OBJECT_TYPES))}"))
        elif criterion == "all":
            if value is True:
                selector["all"] = True
            else:
                errors.append(
                    FieldError(where, "must be true (leave it out to select by the other criteria)")
                )
        else:
            errors.append(FieldError(where, f"is not a criterion: use {', '.join(CRITERIA)}"))
    if not select:
        errors.append(FieldError(path, 'needs at least one criterion ("all": true selects every vault)'))
    return (None if errors else selector), errors


def _read_tags(tags: Any, path: str, errors: list[FieldError]) -> dict[str, list[str]] | None:
    if not isinstance(tags, Mapping) or not tags:
        errors.append(
            FieldError(path, "must be a non-empty object of tag keys to a value or a list of values")
        )
        return None
    if len(tags) > MAX_TAG_KEYS:
        errors.append(FieldError(path, f"must hold at most {MAX_TAG_KEYS} tag keys"))
        return None
    normalized: dict[str, list[str]] = {}
    for key, value in tags.items():
        where = join(path, key)
        problem = _tag_text_problem(key, MAX_TAG_KEY_LENGTH, allow_empty=False)
        if problem is not None:
            errors.append(FieldError(where, f"is not a valid tag key: it {problem}"))
            continue
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
            errors.append(FieldError(where, "must be a tag value or a list of tag values (strings)"))
            continue
        if len(values) > MAX_TAG_VALUES or len(set(values)) != len(values):
            errors.append(FieldError(where, f"must list at most {MAX_TAG_VALUES} distinct values"))
            continue
        for index, item in enumerate(values):
            problem = _tag_text_problem(item, MAX_TAG_VALUE_LENGTH, allow_empty=True)
            if problem is None and item == "*":
                problem = "is '*' alone (a leading '*' matches by the rest of the value)"
            if problem is not None:
                shown = where if isinstance(value, str) else join(where, index)
                errors.append(FieldError(shown, f"is not a valid tag value: it {problem}"))
        normalized[key] = list(values)
    return normalized if len(normalized) == len(tags) else None


def _tag_text_problem(text: str, max_length: int, *, allow_empty: bool) -> str | None:
    if not text and not allow_empty:
        return "is empty"
    if len(text) > max_length:
        return f"is longer than {max_length} characters"
    if text != text.strip():
        return "begins or ends with a space, which CBR would drop"
    if not text.isprintable():
        return f"holds a control character: {show(text)}"
    return None
