"""A moto server on loopback for the AWS adapter tests: one per session, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The base URL of a moto server started for this test session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: str) -> str:
    """The moto server's base URL, with every service's state reset."""
    httpx.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    return moto_server
