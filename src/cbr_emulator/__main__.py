"""`python -m cbr_emulator --port 8080 --vault <uuid>`: serve IAM + CBR on loopback until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import threading

from cbr_emulator.server import DEFAULT_PROJECT_ID, Emulator
from cbr_emulator.state import RateLimit


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cbr_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ak", default="AKEXAMPLE")
    parser.add_argument("--sk", default="SKEXAMPLE")
    parser.add_argument("--user", default="ops", help="IAM user name for token auth")
    parser.add_argument("--password", default="pw")
    parser.add_argument("--domain", default="acme", help="IAM account (domain) name")
    parser.add_argument("--project-id", default=DEFAULT_PROJECT_ID)
    parser.add_argument(
        "--vault",
        action="append",
        default=[],
        metavar="VAULT_UUID",
        help="a vault with no bound resources (repeat)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every CBR response")
    parser.add_argument(
        "--backup-duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds a checkpoint stays protecting before it becomes available (default: forever)",
    )
    parser.add_argument(
        "--create-rate",
        type=float,
        default=None,
        metavar="PER_SECOND",
        help="limit creates (POST /checkpoints) to this many a second; over it they get 429 APIGW.0308"
        " (default: no limit)",
    )
    parser.add_argument(
        "--create-burst",
        type=int,
        default=None,
        metavar="N",
        help="creates allowed back to back under --create-rate (default: the rate rounded up)",
    )
    parser.add_argument(
        "--create-retry-after",
        action="store_true",
        help="send Retry-After (whole seconds) with each 429 of --create-rate",
    )
    arguments = parser.parse_args(argv)
    if arguments.create_rate is None and (arguments.create_burst is not None or arguments.create_retry_after):
        parser.error("--create-burst and --create-retry-after need --create-rate")
    if arguments.create_rate is not None:
        try:
            arguments.create_rate_limit = RateLimit(
                arguments.create_rate, arguments.create_burst, arguments.create_retry_after
            )
        except ValueError as invalid:
            parser.error(f"--create-rate/--create-burst: {invalid}")
    else:
        arguments.create_rate_limit = None
    return arguments


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    emulator = Emulator(
        project_id=arguments.project_id,
        ak=arguments.ak,
        sk=arguments.sk,
        user_name=arguments.user,
        password=arguments.password,
        domain_name=arguments.domain,
        host=arguments.host,
        port=arguments.port,
        latency=arguments.latency,
        backup_duration=arguments.backup_duration,
        create_rate_limit=arguments.create_rate_limit,
    )
    for vault_id in arguments.vault:
        emulator.add_vault(vault_id)
    with emulator, contextlib.suppress(KeyboardInterrupt):
        # The URL tells whoever waits for it that Ctrl-C now stops the emulator cleanly: it is printed
        # from inside that handling, so an interrupt sent the moment it appears is not an error.
        print(emulator.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
