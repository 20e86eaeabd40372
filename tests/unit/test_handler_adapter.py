"""The handler adapts Lambda to the application; what it raises reaches the process's observers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.fakes import RecordingObserver

from cbr_checkpointer.handler import lambda_handler
from cbr_checkpointer.local_context import LocalContext
from cbr_checkpointer.runtime import observing, reset_runtime
from cbr_checkpointer.settings import ConfigurationError


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("CBR_REGION", "CBR_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    reset_runtime()
    yield
    reset_runtime()


@pytest.mark.usefixtures("unconfigured")
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_runtime_that_cannot_be_built_is_reported_to_the_observers_and_raised() -> None:
    recorder = RecordingObserver()

    with observing(recorder), pytest.raises(ConfigurationError) as raised:
        lambda_handler({"vault_id": "3b5816b5-f29c-4172-9d9a-76c719a659ce"}, LocalContext())
    with pytest.raises(ConfigurationError):
        lambda_handler({}, LocalContext())  # no longer observed

    assert recorder.failures == [raised.value]
