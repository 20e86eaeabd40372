"""Importing the handler is cheap and boto3-free: no boto3, no botocore.session, no environment needed;
and it is all of what the function imports: no invocation imports a module of its own."""

from __future__ import annotations

import ast
import graphlib
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

PROBE = """
import json, sys
import cbr_checkpointer.handler
print(json.dumps({
    "boto3": "boto3" in sys.modules,
    "botocore_session": "botocore.session" in sys.modules,
    "powertools_batch": "aws_lambda_powertools.utilities.batch" in sys.modules,
    "httpx2": "httpx2" in sys.modules,
    "httpcore2": "httpcore2" in sys.modules,
    "runtime_built": any(name == "cbr_checkpointer.runtime" and sys.modules[name]._runtime is not None
                              for name in sys.modules),
}))
"""


def test_importing_the_handler_needs_no_environment_and_never_imports_boto3() -> None:
    # Given an interpreter with no configuration at all
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )

    # Then the import succeeds, builds no clients and pulls in no AWS SDK, nor Powertools' batch
    # utility (asyncio, subprocess and its middleware factory, for a contract of one list), nor httpx2
    # or httpcore2 (test tools here: the function speaks HTTP/1.1 through h11)
    assert completed.returncode == 0, completed.stderr
    facts = json.loads(completed.stdout.strip().splitlines()[-1])
    assert facts == {
        "boto3": False,
        "botocore_session": False,
        "powertools_batch": False,
        "httpx2": False,
        "httpcore2": False,
        "runtime_built": False,
    }


INIT_PROBE = """
import json, sys
import cbr_checkpointer.handler
from cbr_checkpointer import runtime, tls
from cbr_checkpointer.models import CheckpointCreate, CreateCheckpointResponse, VaultBackupReq
built = runtime._runtime
print(json.dumps({
    "runtime_built": built is not None,
    "clients": sorted(getattr(c, "service", "cbr") for c in built.clients) if built else None,
    "tls_context_loaded": tls.verified_tls_context.cache_info().currsize,
    "http_stack_imported": "h11" in sys.modules,
    "validators_built": [
        model.__pydantic_complete__ for model in (VaultBackupReq, CheckpointCreate, CreateCheckpointResponse)
    ],
    "boto3": "boto3" in sys.modules,
}))
"""

# What Lambda sets, plus the function's own variables; the endpoints are never contacted.
LAMBDA_ENVIRONMENT = {
    "AWS_LAMBDA_FUNCTION_NAME": "cbr-checkpointer",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "never-used",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "CBR_ENDPOINT": "http://127.0.0.1:9",
    "HUAWEICLOUD_SDK_PROJECT_ID": "4229d7a4e1b64c4f9e7a2b1c3d5e6f70",
    "HUAWEICLOUD_SDK_AK": "AKEXAMPLE",
    "HUAWEICLOUD_SDK_SK": "never-used",
    "IDEMPOTENCY_TABLE": "ledger",
    "EVENT_BUS_NAME": "bus",
}


@pytest.mark.parametrize(("scheme", "bundles_loaded"), [("https", 1), ("http", 0)])
def test_in_a_complete_environment_the_import_builds_the_runtime_for_init(
    scheme: str, bundles_loaded: int
) -> None:
    # Given the environment Lambda gives the function, its endpoints speaking TLS or not
    endpoints = {name: f"{scheme}://127.0.0.1:9" for name in ("AWS_ENDPOINT_URL", "CBR_ENDPOINT")}
    completed = subprocess.run(
        [sys.executable, "-c", INIT_PROBE],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"} | LAMBDA_ENVIRONMENT | endpoints,
        timeout=60,
        check=False,
    )

    # Then importing the handler (Lambda's init) built the runtime, its HTTP stack, the body validators
    # and, when some endpoint speaks TLS, the verified TLS context, so the first invocation does not;
    # still without boto3
    assert completed.returncode == 0, completed.stderr
    facts = json.loads(completed.stdout.strip().splitlines()[-1])
    assert facts == {
        "runtime_built": True,
        "clients": ["cbr", "dynamodb", "events"],
        "tls_context_loaded": bundles_loaded,
        "http_stack_imported": True,
        "validators_built": [True, True, True],
        "boto3": False,
    }


# -- the import graph of src/cbr_checkpointer ---------------------------------------------------------

PACKAGE = SRC / "cbr_checkpointer"
# Who may import the top of the stack: the handler and the command line drive the application through
# the runtime (the composition root); nothing below them reaches back up.
MAY_IMPORT = {
    "cbr_checkpointer.__main__": {"cbr_checkpointer.cli"},
    "cbr_checkpointer.cli": {"cbr_checkpointer.cli.invoke"},
    "cbr_checkpointer.cli.invoke": {"cbr_checkpointer.handler", "cbr_checkpointer.runtime"},
    "cbr_checkpointer.handler": {"cbr_checkpointer.application", "cbr_checkpointer.runtime"},
    "cbr_checkpointer.runtime": {"cbr_checkpointer.application"},
}
TOP = {
    "cbr_checkpointer.handler",
    "cbr_checkpointer.cli",
    "cbr_checkpointer.cli.invoke",
    "cbr_checkpointer.runtime",
    "cbr_checkpointer.application",
}
# What every module may stand on, as it would on the standard library: it imports nothing of the package.
FOUNDATION = {"cbr_checkpointer.values"}
# The rules and what they stand on: these know the ports and the domain, never an adapter.
RULES = {
    "cbr_checkpointer.application",
    "cbr_checkpointer.service",
    "cbr_checkpointer.completion",
    "cbr_checkpointer.fanout",
}
# What the rules stand on. The key scheme and a selection's expansion live here, not in the trigger
# parsers, because the fan-out builds the same requests the parsers do.
CORE = {
    "cbr_checkpointer.domain",
    "cbr_checkpointer.ports",
    "cbr_checkpointer.retry",
    "cbr_checkpointer.idempotency_keys",
    "cbr_checkpointer.field_paths",
    "cbr_checkpointer.expansion",
}
# Judgements: pure functions of CBR's answers, which the rules ask for and act on. They know the domain's
# values and the status table, and nothing that calls, logs or reads a clock.
JUDGEMENTS = {"cbr_checkpointer.checkpoint_verdict"}
JUDGEMENTS_MAY_USE = {"cbr_checkpointer.domain", "cbr_checkpointer.statuses"} | FOUNDATION
JUDGEMENTS_STANDARD_LIBRARY = {"__future__", "collections.abc", "typing"}
# The status table is knowledge of CBR's vocabulary, not an adapter: the rules read it.
RULES_MAY_USE = (
    CORE
    | RULES
    | JUDGEMENTS
    | FOUNDATION
    | {"cbr_checkpointer.observability", "cbr_checkpointer.models", "cbr_checkpointer.statuses"}
)
CORE_MAY_USE = CORE | FOUNDATION | {"cbr_checkpointer.models"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import of the package in `path`, wherever it stands (lazy ones too)."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cbr_checkpointer"):
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend(
                (alias.name, []) for alias in node.names if alias.name.startswith("cbr_checkpointer")
            )
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        graph[module_name(path)] = {module for module, _ in imports_of(path)}
    return graph


def test_nothing_below_the_handler_imports_its_way_back_up() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets & TOP
        if target not in MAY_IMPORT.get(module, set())
    ]

    assert upward == []


def test_the_rules_know_only_ports_and_the_domain() -> None:
    graph = import_graph()

    reaching_out = [
        f"{module} imports {target}"
        for module in RULES
        for target in graph[module] - RULES_MAY_USE
        if not (module == "cbr_checkpointer.application" and target in RULES)
    ]
    core_reaching_out = [
        f"{module} imports {target}" for module in CORE for target in graph[module] - CORE_MAY_USE
    ]

    assert reaching_out == []
    assert core_reaching_out == []
    assert graph["cbr_checkpointer.domain"] == FOUNDATION
    assert all(graph[module] == set() for module in FOUNDATION)


def test_a_judgement_is_pure_it_knows_values_and_the_status_table_only() -> None:
    graph = import_graph()

    reaching_out = [
        f"{module} imports {target}" for module in JUDGEMENTS for target in graph[module] - JUDGEMENTS_MAY_USE
    ]
    # No port, logger, clock, socket or environment through the standard library either.
    outside_the_standard_allowance = [
        f"{module} imports {name}"
        for module in JUDGEMENTS
        for name in every_import_of(PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py"))
        if not name.startswith("cbr_checkpointer") and name not in JUDGEMENTS_STANDARD_LIBRARY
    ]

    assert reaching_out == []
    assert outside_the_standard_allowance == []
    assert graph["cbr_checkpointer.checkpoint_verdict"] == JUDGEMENTS_MAY_USE


def every_import_of(path: Path) -> list[str]:
    """Every module `path` imports, of the package or not."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()

    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")

    assert set(graph) <= set(order)


def test_no_module_imports_another_modules_private_names() -> None:
    private = [
        f"{module_name(path)} imports {name} from {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for module, names in imports_of(path)
        for name in names
        if name.startswith("_")
    ]

    assert private == []


REPOSITORY_ONLY = ("devtools", "cbr_emulator", "tests", "benchmarks")
MODULE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.\w+)*")


def test_the_package_imports_nothing_that_ships_only_with_the_repository() -> None:
    # What is installed (the Lambda zip, a wheel) has src/cbr_checkpointer alone: an import of the
    # repository's tools, or a sys.path edit to reach them, works in a checkout and nowhere else.
    reaching_out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute) and node.attr == "path":
                if isinstance(node.value, ast.Name) and node.value.id == "sys":
                    reaching_out.append(f"{module_name(path)} uses sys.path")
            elif (
                # importlib.import_module("devtools.sandbox") and the like
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and MODULE_NAME.fullmatch(node.value)
                and node.value.split(".")[0] in REPOSITORY_ONLY
            ):
                reaching_out.append(f"{module_name(path)} names the module {node.value!r}")
            reaching_out += [
                f"{module_name(path)} imports {name}"
                for name in names
                if name.split(".")[0] in REPOSITORY_ONLY
            ]

    assert reaching_out == []


# The command line imports lazily on purpose: each command loads what it uses.
IMPORTS_ON_DEMAND = {"cbr_checkpointer.__main__", "cbr_checkpointer.cli"}
# (module, what it imports inside a function): only a rejected payload's "did you mean" hint needs it.
LAZY_BY_DESIGN = {("cbr_checkpointer.triggers.requests", "difflib")}


def test_what_lambda_runs_imports_at_module_level_so_no_invocation_pays_for_an_import() -> None:
    # An import inside a function runs in the invocation that first reaches it, at the memory size's
    # share of a CPU, instead of in init: for an SQS batch, the fleet's cold start.
    lazy: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if any(module == root or module.startswith(root + ".") for root in IMPORTS_ON_DEMAND):
            continue
        for function in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                lazy.update(
                    (module, name)
                    for node in ast.walk(function)
                    if isinstance(node, ast.Import | ast.ImportFrom)
                    for name in imported_names(node)
                )

    assert lazy == LAZY_BY_DESIGN


def imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or "."]
    return [alias.name for alias in node.names]


def test_the_package_never_imports_powertools_batch_utility() -> None:
    # The application runs a batch and builds its partial batch response; the utility would import
    # asyncio, subprocess and its middleware factory into init, or into the first batch's invocation.
    importing = [
        f"{module_name(path)} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name in every_import_of(path)
        if name.startswith("aws_lambda_powertools.utilities.batch")
    ]

    assert importing == []


def test_the_graph_is_read_from_the_real_package() -> None:
    graph = import_graph()

    # The checks above would pass vacuously over an empty or misread graph.
    assert {"cbr_checkpointer.handler", "cbr_checkpointer.application", "cbr_checkpointer.cbr.client"} <= set(
        graph
    )
    assert "cbr_checkpointer.application" in graph["cbr_checkpointer.handler"]
    assert "cbr_checkpointer.ports" in graph["cbr_checkpointer.service"]


def test_unit_tests_cannot_open_connections() -> None:
    # The autouse guard of tests/unit/conftest.py: a unit test that reaches for the network fails.
    with pytest.raises(OSError, match="unit test"), socket.socket() as sock:
        sock.connect(("127.0.0.1", 9))
