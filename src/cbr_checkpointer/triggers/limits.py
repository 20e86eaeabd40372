"""What any document must be before a rule reads it: bounded, and made of valid Unicode and finite numbers.

A payload comes from whoever may invoke the function or send to its queues. Before a field is looked
at, the whole document is checked once, so that no later step (hashing a key, quoting the payload in
an event, encoding a request for CBR) meets a string it cannot encode or a structure it cannot walk:

- size: at most `MAX_DOCUMENT_BYTES`, 256 KiB, what an SQS message and an asynchronous invocation
  can carry at most (a synchronous invocation could carry more; no valid request needs it). An SQS
  body is measured before it is parsed; an invocation, which Lambda has parsed already, is measured
  as it is walked, and the walk stops as soon as the limit is passed.
- depth: at most `MAX_DEPTH` levels of objects and arrays; a body's nesting is counted on its text
  before it is parsed.
- strings, object keys included: valid Unicode (no lone surrogates) without NUL.
- numbers: finite; `NaN` and `Infinity` are not JSON and would make an event's Detail invalid.

A document that breaks one of these is quoted in its Rejected event only as `quotable` makes it:
surrogates replaced, non-finite numbers and too deep or too many parts replaced by markers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from cbr_checkpointer.domain import FieldError
from cbr_checkpointer.field_paths import join

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DEPTH = 32
# What a quoted part of a document that broke a limit is replaced with.
ELIDED = "…"
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_ESCAPE_OR_SURROGATE = re.compile(r"\\u|[\ud800-\udfff]")
# The parts of a document `quotable` copies at most; the publisher cuts the quote to its own limit anyway.
_MAX_QUOTED_PARTS = 4096


class _NotJson(ValueError):
    pass


def string_problem(value: str) -> str | None:
    """What makes a string unusable as text (a lone surrogate, NUL), or None when it is usable."""
    if _SURROGATE.search(value):
        return "holds a lone surrogate, which is not valid Unicode"
    if "\x00" in value:
        return "holds the NUL character"
    return None


def check_document(document: Any, prefix: str = "", *, label: str = "payload") -> FieldError | None:
    """The first limit `document` breaks, naming where, or None when it keeps them all.

    Iterative, so any depth is safe to walk; it stops at the first problem, the first in document
    order. The size counted is a lower bound of the document's compact JSON text, so a document that
    fits is never refused. Fields are named by their path under `prefix` (a nesting too deep by the
    top-level field that holds it); the document as a whole is named `label`.
    """
    budget = MAX_DOCUMENT_BYTES
    # (value, its parent's path, its key or index in the parent, its depth, its top-level field):
    # paths are only joined where they are needed, for a container's children or for a problem.
    stack: list[tuple[Any, str, int | str | None, int, int | str | None]] = [
        (document, prefix, None, 0, None)
    ]
    while stack:
        value, parent, part, depth, top = stack.pop()
        if isinstance(value, str):
            budget -= len(value) + 2
            problem = string_problem(value)
            if problem is not None:
                return FieldError(_path(parent, part) or label, f"must be text: it {problem}")
        elif isinstance(value, float) and not math.isfinite(value):
            message = "must be a finite number (NaN and Infinity are not JSON)"
            return FieldError(_path(parent, part) or label, message)
        elif isinstance(value, Mapping | list):
            if depth >= MAX_DEPTH:
                return FieldError(_path(prefix, top) or label, f"is nested more than {MAX_DEPTH} levels deep")
            budget -= 2
            where = _path(parent, part)
            children: list[tuple[Any, str, int | str | None, int, int | str | None]] = []
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        return FieldError(where or label, "must have text keys")
                    problem = string_problem(key)
                    if problem is not None:
                        return FieldError(join(where, key), f"is a field name that {problem}")
                    budget -= len(key) + 3
                    children.append((item, where, key, depth + 1, key if top is None else top))
            else:
                children.extend(
                    (item, where, index, depth + 1, index if top is None else top)
                    for index, item in enumerate(value)
                )
            stack.extend(reversed(children))
        else:
            budget -= 1
        if budget < 0:
            return FieldError(prefix or label, f"is larger than {MAX_DOCUMENT_BYTES} bytes")
    return None


def _path(parent: str, part: int | str | None) -> str:
    return parent if part is None else join(parent, part)


def load_json(text: str, prefix: str, *, label: str) -> tuple[Any, FieldError | None]:
    """The document a JSON text holds, checked against every limit, or the first limit it breaks.

    Size and depth are checked on the text, before it is parsed. Problems of the text as a whole
    are named `label`, those of a field by its path under `prefix`.
    """
    if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        return None, FieldError(label, f"is larger than {MAX_DOCUMENT_BYTES} bytes")
    if _text_depth(text) > MAX_DEPTH:
        return None, FieldError(label, f"is nested more than {MAX_DEPTH} levels deep")
    try:
        document = _DECODER.decode(text)
    except _NotJson as error:
        return None, FieldError(label, str(error))
    except RecursionError:
        return None, FieldError(label, f"is nested more than {MAX_DEPTH} levels deep")
    except ValueError:
        return None, FieldError(label, "is not valid JSON")
    if _ESCAPE_OR_SURROGATE.search(text) is None:
        # Every string is as written in a text without escapes or surrogates (JSON has no raw NUL in
        # a string), and the decoder lets no non-finite number through: nothing left to walk.
        return document, None
    return document, check_document(document, prefix, label=label)


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"is not valid JSON: {name} is not a JSON number")


def _finite(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise _NotJson(f"is not valid JSON: {literal[:32]} is too large for a number")
    return number


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite)


def _text_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not count)."""
    if "[" not in text and "{" not in text:
        return 0
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    if len(brackets) <= 2 * MAX_DEPTH:
        return len(brackets) // 2
    depth = deepest = 0
    for bracket in brackets:
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        else:
            depth -= 1
    return deepest


def quotable(document: Any) -> Any:
    """A copy of `document` that any JSON encoder can write and any reader can read back.

    Strings lose lone surrogates (each becomes U+FFFD), non-finite numbers become their name as a
    string, and parts deeper than `MAX_DEPTH` or past the first few thousand become `ELIDED`.
    """
    parts = _MAX_QUOTED_PARTS

    def copy(value: Any, depth: int) -> Any:
        nonlocal parts
        parts -= 1
        if parts < 0 or depth > MAX_DEPTH:
            return ELIDED
        if isinstance(value, str):
            return _SURROGATE.sub("\ufffd", value)
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        if isinstance(value, Mapping):
            copied: dict[str, Any] = {}
            for key, item in value.items():
                if parts <= 0:
                    copied[ELIDED] = ELIDED
                    break
                copied[_SURROGATE.sub("\ufffd", str(key))] = copy(item, depth + 1)
            return copied
        if isinstance(value, list | tuple):
            items: list[Any] = []
            for item in value:
                if parts <= 0:
                    items.append(ELIDED)
                    break
                items.append(copy(item, depth + 1))
            return items
        return _SURROGATE.sub("\ufffd", repr(value)[:64])

    return copy(document, 0)
