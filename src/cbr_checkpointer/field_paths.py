"""How a field is named in an error: a short dotted path, never an echo of a huge or unprintable input."""

from __future__ import annotations

MAX_SHOWN_LENGTH = 64


def join(prefix: str, *parts: int | str) -> str:
    """`prefix` extended by object keys (`.name`) and array indexes (`[0]`)."""
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path = f"{path}[{part}]"
        else:
            name = clip(part) if part.isprintable() else show(part)
            path = f"{path}.{name}" if path else name
    return path


def clip(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_LENGTH else f"{text[:MAX_SHOWN_LENGTH]}…"


def show(text: str) -> str:
    """A quoted, escaped and clipped rendering of `text`: safe to print whatever it holds."""
    return ascii(clip(text)) if not text.isprintable() else repr(clip(text))
