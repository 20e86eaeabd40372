"""`python -m devtools.cli`: the local side of the command line, for a checkout of this repository.

    invoke FILE      run the real handler on a trigger file against a local CBR emulator and moto
                     (an event bus with a capture queue, a watch queue, Secrets Manager): `make run`
    emulator ...     serve the local Huawei IAM + CBR emulator for your own tools
    sandbox -- CMD   run CMD with the environment of a fresh local sandbox: the function's configuration
                     pointing at the emulator and moto, and REQUEST_QUEUE_URL, a request queue in moto

It builds on the function's own command line (`cbr_checkpointer.cli`), which ships without any of this.
Exit codes as there: 0 all good; 1 a request failed or was not published (or, with --expect-rejected,
one was not rejected); 2 the command could not do its job.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from cbr_checkpointer.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PROBLEM,
    EXIT_USAGE,
    CommandError,
    read_json,
)
from cbr_checkpointer.cli.invoke import Run, add_invoke_options, function_output, invoke_handler, show
from cbr_checkpointer.local_context import LocalContext

PROG = "python -m devtools.cli"


def _invoke_in_sandbox(run: Run, event: Any, context: LocalContext, *, auth: str, progress: bool) -> None:
    """The handler against a fresh sandbox; the sandbox is imported here, inside `function_output`, since
    it imports the function's modules."""
    import logging

    from cbr_checkpointer.handler import lambda_handler
    from devtools.sandbox import BUS_NAME, Sandbox

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    overrides = {"DRY_RUN": "true"} if run.dry_run else {}
    # watch=True: a watch queue in moto and backups that finish in the emulator after half a second,
    # so the run shows the whole life of a checkpoint: Created, then Completed (or Failed).
    with (
        Sandbox(auth="token" if auth == "token" else "aksk", watch=True) as sandbox,
        sandbox.configured(**overrides),
    ):
        emulator = sandbox.emulator
        print(f"CBR emulator: {emulator.base_url}   moto: {sandbox.moto_url}   auth: {auth}", file=sys.stderr)
        print(f"invoking cbr_checkpointer.handler.lambda_handler with {run.file}", file=sys.stderr)
        invoke_handler(run, event, context, progress=progress)
        if progress and sandbox.request_messages():
            print("running the selection's vaults from the request queue ...", file=sys.stderr)
        sandbox.run_request_queue(
            lambda_handler, lambda: LocalContext(timeout_seconds=context.timeout_seconds)
        )
        # What the invocation itself asked of CBR; the completion checks below add reads that depend on
        # how long the backup took.
        run.emulator = {
            "base_url": emulator.base_url,
            "requests": len(emulator.requests),
            "checkpoints_created": len(emulator.created),
            "token_requests": emulator.token_requests,
        }
        run.events = sandbox.published_events()
        if progress and sandbox.watch_messages():
            print("following the checkpoint(s) to completion through the watch queue ...", file=sys.stderr)
        run.events += sandbox.follow_completion(
            lambda_handler, lambda: LocalContext(timeout_seconds=context.timeout_seconds)
        )
        run.events_from = f"read back from bus {BUS_NAME!r} (moto)"


def _invoke(arguments: argparse.Namespace) -> int:
    _, event = read_json(arguments.file)
    run = Run(file=arguments.file, mode="sandbox", dry_run=arguments.dry_run)
    context = LocalContext(timeout_seconds=arguments.timeout)
    with function_output(verbose=arguments.verbose):
        _invoke_in_sandbox(run, event, context, auth=arguments.auth, progress=not arguments.json)
    code = show(run, as_json=arguments.json)
    if not arguments.expect_rejected:
        return code
    outcomes = [result.outcome for result in run.results]
    published = all(result.published for result in run.results)
    if run.raised is None and outcomes and set(outcomes) == {"rejected"} and published:
        print(
            f"{arguments.file} is invalid on purpose: {len(outcomes)} request(s) rejected, each with a "
            "Rejected event naming its fields, as expected",
            file=sys.stderr,
        )
        return EXIT_OK
    print(f"{arguments.file} should have been rejected, but ended: {', '.join(outcomes)}", file=sys.stderr)
    return EXIT_PROBLEM


def _emulator(emulator_arguments: list[str]) -> int:
    """Serve the emulator with `python -m cbr_emulator`'s own arguments and main loop."""
    from cbr_emulator.__main__ import main as emulator_main
    from cbr_emulator.__main__ import parse_arguments

    parsed = parse_arguments(emulator_arguments)
    vaults = ", ".join(parsed.vault) or "none (add --vault UUID; any other vault answers 404)"
    print(
        "CBR + IAM emulator; it accepts:\n"
        f"  project id:  {parsed.project_id}\n"
        f"  AK/SK:       {parsed.ak} / {parsed.sk}   (SDK-HMAC-SHA256)\n"
        f"  IAM user:    {parsed.user} / {parsed.password} in domain {parsed.domain}   (token auth)\n"
        f"  vaults:      {vaults}\n"
        "point the function at it with CBR_ENDPOINT and HUAWEICLOUD_SDK_IAM_ENDPOINT = the URL below;\n"
        "Ctrl-C stops it. Base URL:",
        file=sys.stderr,
        flush=True,
    )
    emulator_main(emulator_arguments)
    return EXIT_OK


REQUEST_QUEUE = "cbr-checkpointer-requests"


def _in_sandbox(command: list[str]) -> int:
    """Run `command` against a fresh sandbox, with its configuration in the environment; its exit code."""
    import logging
    import os
    import subprocess

    from devtools.sandbox import Sandbox

    if not command:
        raise CommandError(
            "sandbox needs a command to run, e.g. sandbox -- cbr-checkpointer invoke --real FILE"
        )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with function_output(verbose=False), Sandbox() as sandbox:
        queue_url = sandbox.aws("sqs").call("CreateQueue", {"QueueName": REQUEST_QUEUE})["QueueUrl"]
        environment = os.environ | sandbox.environment | {"REQUEST_QUEUE_URL": queue_url}
        try:
            return subprocess.run(command, env=environment, check=False).returncode
        except OSError as error:
            raise CommandError(f"cannot run {command[0]!r}: {error.strerror}") from None


def parser() -> argparse.ArgumentParser:
    commands_parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None
    )
    commands = commands_parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    invoke = commands.add_parser(
        "invoke",
        help="run the real handler on a trigger file against a local CBR emulator and moto",
        description="Run the real Lambda handler on a trigger file against a local CBR emulator and a "
        "moto server (an event bus with a capture queue, a watch queue, Secrets Manager), then follow "
        "each checkpoint to its end, as `make run` does. stderr gets one line per request and a "
        "summary (with --verbose also the function's JSON logs and EMF metrics); stdout gets the "
        "published events as a JSON array, or with --json one JSON document.",
    )
    add_invoke_options(invoke)
    invoke.add_argument(
        "--auth",
        choices=["aksk", "token"],
        default="aksk",
        help="Huawei AK/SK signing (default) or IAM password/token from a secret in moto",
    )
    invoke.add_argument(
        "--expect-rejected",
        action="store_true",
        help="the file is invalid on purpose (events/invalid-*): exit 0 when every request ends Rejected",
    )
    sandbox = commands.add_parser(
        "sandbox",
        help="run a command against a fresh local sandbox (emulator + moto), configured in its environment",
        description="Start the CBR emulator and moto, as invoke does, and run COMMAND with the "
        "function's configuration pointing at them (CBR_ENDPOINT, HUAWEICLOUD_SDK_*, EVENT_BUS_NAME, "
        "AWS_ENDPOINT_URL, AWS_* ...) and REQUEST_QUEUE_URL, an empty request queue in moto; both stop "
        "when it ends. Its exit code is COMMAND's. E.g. sandbox -- cbr-checkpointer invoke --real FILE.",
    )
    sandbox.add_argument("run", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="what to run")
    commands.add_parser(
        "emulator",
        add_help=False,
        help="serve the local Huawei IAM + CBR emulator (emulator --help for its options)",
        description="Serve the local CBR emulator; the options are those of `python -m cbr_emulator`.",
    )
    return commands_parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments, extra = parser().parse_known_args(argv)
    try:
        if arguments.command_name == "emulator":
            return _emulator(extra)
        if arguments.command_name == "sandbox":
            command = arguments.run[1:] if arguments.run[:1] == ["--"] else arguments.run
            return _in_sandbox(command + extra)
        if extra:
            parser().error(f"unrecognized arguments: {' '.join(extra)}")
        return _invoke(arguments)
    except CommandError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
