"""Shared fixtures. The sandbox (emulator + moto on loopback) is started once per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from devtools.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[Sandbox]:
    from devtools.sandbox import Sandbox

    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(sandbox_session: Sandbox) -> Iterator[Sandbox]:
    """A clean sandbox with the function configured to use it (AK/SK auth)."""
    sandbox_session.reset()
    sandbox_session.auth = "aksk"
    with sandbox_session.configured():
        yield sandbox_session
