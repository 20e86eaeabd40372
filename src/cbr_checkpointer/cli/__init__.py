"""`cbr-checkpointer` (also `python -m cbr_checkpointer`): a command line for the people who run the function.

    validate FILE...          check request or trigger files against the contract, as the function would
    invoke --real FILE        run the real handler on a trigger file, against the endpoints configured
                              in the environment
    send FILE --queue-url U   validate a request, then put it on the request queue (SQS SendMessage)

A local run against a CBR emulator and moto is a development tool of the repository (`devtools.cli`),
which imports this package; nothing here knows about it.

Exit codes: 0 all good; 1 a request is invalid, failed or was not published; 2 the command could not do
its job (unreadable or non-JSON file, bad configuration, invoke without --real).

Only the standard library is imported up front: each command imports what it needs when it runs, and
the Lambda handler never imports this package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cbr_checkpointer.cli.common import EXIT_INTERRUPTED, EXIT_USAGE, CommandError
from cbr_checkpointer.cli.invoke import add_parser as add_invoke
from cbr_checkpointer.cli.send import add_parser as add_send
from cbr_checkpointer.cli.validate import add_parser as add_validate

PROG = "cbr-checkpointer"
EPILOG = (
    "Exit codes: 0 all good; 1 a request is invalid, failed or was not published; "
    "2 the command could not do its job."
)


def parser(prog: str) -> argparse.ArgumentParser:
    commands_parser = argparse.ArgumentParser(
        prog=prog,
        description="Check, run and send backup requests for the cbr-checkpointer function.",
        epilog=EPILOG,
    )
    commands = commands_parser.add_subparsers(dest="command_name", required=True, metavar="COMMAND")
    add_validate(commands)
    add_invoke(commands)
    add_send(commands)
    return commands_parser


def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    """The command line; `prog` is how the person started it, for usage and error lines."""
    arguments = parser(prog).parse_args(argv)
    try:
        code: int = arguments.command(arguments, prog)
    except CommandError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code
