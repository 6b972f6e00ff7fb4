"""``clawbeat monitor``: the foreground service."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from monitor.cli_common import add_database_option, settings_from
from monitor.liveness.policy import DEFAULT_GRACE
from monitor.logging_setup import configure_logging


def add_monitor_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "monitor",
        help="run the monitor service in the foreground",
        description="Subscribe to device heartbeats and presence, judge liveness, persist "
        "state and history, publish retained status topics. SIGTERM flushes, publishes "
        "the monitor offline and exits 0. Flags override CLAWBEAT_* environment variables.",
    )
    p.add_argument(
        "--mqtt-url",
        help="broker URL, mqtt://user:pass@host:port or mqtts://; several, comma-separated, "
        "for the nodes of a broker cluster",
    )
    p.add_argument("--mqtt-ca-file", type=Path, help="CA bundle for mqtts://")
    p.add_argument("--mqtt-cert-file", type=Path, help="client certificate for mqtts://")
    p.add_argument("--mqtt-key-file", type=Path, help="client key for mqtts://")
    p.add_argument("--topic-root", help="topic root (default clawbeat/v1)")
    add_database_option(p)
    p.add_argument("--sources-file", type=Path, help="TOML file of sources in other conventions")
    p.add_argument("--default-interval", type=float, help="seconds (default 30)")
    p.add_argument(
        "--grace", type=float, help=f"default class grace, seconds (default {DEFAULT_GRACE:g})"
    )
    p.add_argument("--missed-limit", type=int, help="missed intervals before stale (3)")
    p.add_argument("--lost-after", type=float, help="seconds stale/offline before lost")
    p.add_argument("--will-hold", type=float, help="seconds a will waits for a reconnect (2)")
    p.add_argument("--warmup", type=float, help="seconds (default: longest interval + grace)")
    p.add_argument("--flush-interval", type=float, help="write-behind window, seconds (1)")
    p.add_argument("--summary-interval", type=float, help="fleet summary period (5)")
    p.add_argument(
        "--http-bind",
        help="HOST:PORT for the API, dashboard and /metrics (127.0.0.1:8080); '' disables",
    )
    p.add_argument("--http-tls-cert", type=Path, help="serve HTTPS with this certificate")
    p.add_argument("--http-tls-key", type=Path, help="private key for --http-tls-cert")
    p.add_argument("--log-format", choices=["text", "json"], help="log format (text)")
    p.add_argument("--log-level", help="log level (INFO)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    configure_logging(settings.log_level, settings.log_format)
    # Imported here, not at the top: every other `clawbeat` command parses its arguments
    # through this module, and none of them needs the MQTT stack or the web server.
    from monitor.process import MonitorProcess  # noqa: PLC0415

    async def serve() -> int:
        return await (await MonitorProcess.open(settings)).run()

    return asyncio.run(serve())
