"""The ``clawbeat`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from broker.cli import add_broker_parser
from broker.errors import BrokerToolError
from device_client.cli import add_device_parser, add_simulate_parser
from device_client.protocol import ProtocolError
from monitor.alerts.cli import add_alert_parsers
from monitor.cli_cluster import add_cluster_parser
from monitor.cli_db import add_db_parser
from monitor.cli_manage import add_manage_parsers
from monitor.cli_monitor import add_monitor_parser
from monitor.cli_sources import add_sources_parser
from monitor.cli_status import add_status_parsers
from monitor.cli_token import add_token_parser
from monitor.demo import add_demo_parser
from monitor.errors import MonitorError
from monitor.store.errors import StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clawbeat",
        description="MQTT heartbeat and presence monitor for IoT fleets. Every setting is "
        "also an environment variable prefixed CLAWBEAT_ (e.g. CLAWBEAT_MQTT_URL, "
        "CLAWBEAT_DATABASE_URL); secrets may come from *_FILE variables.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_monitor_parser(sub)
    add_status_parsers(sub)
    add_manage_parsers(sub)
    add_sources_parser(sub)
    add_alert_parsers(sub)
    add_cluster_parser(sub)
    add_db_parser(sub)
    add_token_parser(sub)
    add_device_parser(sub)
    add_simulate_parser(sub)
    add_broker_parser(sub)
    add_demo_parser(sub)
    return parser


# What a shell reports for a tool that SIGPIPE ended (128 + 13), e.g. under `set -o pipefail`.
EXIT_READER_GONE = 141


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        try:
            code: int = args.func(args)
        except (MonitorError, StoreError, BrokerToolError, ProtocolError) as exc:
            print(f"clawbeat {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
        # Inside the try: output still buffered would otherwise meet a closed pipe only
        # at interpreter exit, where the error can no longer be handled.
        sys.stdout.flush()
    except BrokenPipeError:
        # `clawbeat status | head -1`: the reader has what it wanted and left. Python
        # ignores SIGPIPE, so end quietly here as a tool killed by SIGPIPE would.
        _discard_stdout()
        return EXIT_READER_GONE
    return code


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit does not fail on the pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is no file (a test's capture, already closed)
        pass


if __name__ == "__main__":
    sys.exit(main())
