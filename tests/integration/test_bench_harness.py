"""The bench's Lambda stand-in works: awslambdaric (python3.13) against the loopback Runtime API.

Structure only, never times: a cold environment answers its invocations through the Runtime API with
the request ids it was given, a handler that fails at import is reported on /init/error, and the
server-side clocks are ordered. The tiny handlers live in a temporary task directory, so this needs
only the bench's python3.13 venv (`make bench-environments`), not the packaged function.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.lambda_env import BENCH_PYTHON, BenchEnvironmentError, ExecutionEnvironment

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not BENCH_PYTHON.exists(), reason="the bench's python3.13 venv is missing: make bench-environments"
    ),
]

ECHO = """
import os, sys

STARTED_UNDER = sys.modules["__main__"].__spec__.name

def handler(event, context):
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function_arn": context.invoked_function_arn,
        "time_left": context.get_remaining_time_in_millis() > 0,
        "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
        "started_under": STARTED_UNDER,
        "python": list(sys.version_info[:2]),
    }
"""

BROKEN = """
raise RuntimeError("this handler cannot be imported")
"""


@pytest.fixture
def task(tmp_path: Path) -> Path:
    (tmp_path / "echo.py").write_text(ECHO, encoding="utf-8")
    (tmp_path / "broken.py").write_text(BROKEN, encoding="utf-8")
    return tmp_path


def test_a_cold_environment_answers_each_invocation_through_the_runtime_api(task: Path) -> None:
    # Given a fresh execution environment running a handler under awslambdaric
    environment = ExecutionEnvironment(task, "echo.handler", {}, "test-echo")
    try:
        # When it gets a first and a second invocation
        cold = environment.cold_start({"n": 1})
        second = environment.invoke([{"n": 2}])[0]
    finally:
        environment.close()

    # Then each response came back on its own request id, from python3.13 started by awslambdaric
    for invocation, n in ((cold.first, 1), (second, 2)):
        response = invocation.response
        assert response["event"] == {"n": n}
        assert response["request_id"] == invocation.request_id
        assert response["function_arn"].startswith("arn:aws:lambda:")
        assert response["time_left"] is True
        assert response["runtime_api"] == environment.api.address
        assert response["started_under"] == "awslambdaric.__main__"
        assert response["python"] == [3, 13]
    # And the server-side clocks are ordered: start, first /next, first response, second invocation
    assert 0 < cold.init < cold.first_response
    assert cold.first.delivered is not None
    assert second.delivered is not None
    assert cold.first.answered is not None
    assert cold.first.delivered <= cold.first.answered <= second.delivered
    assert cold.init_cpu > 0
    assert cold.first.cpu >= 0
    assert environment.api.next_calls >= 2


def test_a_handler_that_fails_at_import_is_reported_on_init_error(task: Path) -> None:
    # Given an environment whose handler module raises when imported
    environment = ExecutionEnvironment(task, "broken.handler", {}, "test-broken")
    try:
        # When it is invoked, the bench is told the init failed, with the module's error
        with pytest.raises(BenchEnvironmentError, match="init failed"):
            environment.invoke([{"n": 1}])
    finally:
        environment.close()

    assert environment.api.init_error is not None
    assert "this handler cannot be imported" in environment.api.init_error["errorMessage"]
