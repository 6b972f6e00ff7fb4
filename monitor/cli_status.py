"""``clawbeat status`` and ``clawbeat watch``: what the monitor knows, from the database.

Both read the database the monitor writes (state transitions are committed promptly,
other fields within a flush window), so they work from any machine that can reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from monitor.cli_common import add_database_option, db_session, settings_from
from monitor.cli_table import ago, render_table
from monitor.liveness.states import State
from monitor.store import reports
from monitor.store.reports import Device

COLUMNS = ("DEVICE", "STATE", "SINCE", "LAST SEEN", "CLASS", "INTERVAL", "REASON")
# Worst first: what needs attention leads the table.
_ORDER = {
    s: i
    for i, s in enumerate(["lost", "offline", "stale", "late", "unknown", "maintenance", "online"])
}


def add_status_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, helptext in (
        ("status", "table of devices (filter by state or class)"),
        ("watch", "live view of the fleet, refreshed every second"),
    ):
        p = subparsers.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--state", choices=[s.value for s in State], help="only this state")
        p.add_argument("--class", dest="class_name", help="only this device class")
        p.add_argument(
            "--limit",
            type=int,
            default=None if name == "status" else 40,
            help="at most this many rows",
        )
        add_database_option(p)
        if name == "status":
            p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
            p.set_defaults(func=_status)
        else:
            p.add_argument("--interval", type=float, default=1.0, help="refresh seconds")
            p.set_defaults(func=_watch)


def _rows(devices: Sequence[Device], now: datetime) -> list[tuple[str, ...]]:
    ordered = sorted(devices, key=lambda d: (_ORDER.get(d.state, 9), d.id))
    return [
        (
            d.id,
            d.state,
            ago(d.since, now),
            ago(d.last_seen, now),
            d.class_name,
            f"{d.interval_override or d.announced_interval or '-'}",
            d.reason or "",
        )
        for d in ordered
    ]


def device_table(devices: Sequence[Device], now: datetime) -> str:
    return render_table(COLUMNS, _rows(devices, now))


async def _fetch(args: argparse.Namespace) -> tuple[list[Device], dict[str, int]]:
    async with db_session(settings_from(args).database_url) as session:
        devices = await reports.list_devices(session, state=args.state, class_name=args.class_name)
        counts = await reports.count_devices_by_state(session)
    return devices, counts


def _summary(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = [f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: _ORDER.get(kv[0], 9))]
    return f"{total} devices: " + (", ".join(parts) if parts else "none")


def _status(args: argparse.Namespace) -> int:
    devices, counts = asyncio.run(_fetch(args))
    now = datetime.now(UTC)
    if args.json:
        for d in devices[: args.limit]:
            print(
                json.dumps(
                    {
                        "device": d.id,
                        "state": d.state,
                        "since": d.since.isoformat(),
                        "last_seen": d.last_seen.isoformat() if d.last_seen else None,
                        "class": d.class_name,
                        "reason": d.reason,
                        "interval": d.interval_override or d.announced_interval,
                    }
                )
            )
        return 0
    print(_summary(counts))
    ordered = sorted(devices, key=lambda d: (_ORDER.get(d.state, 9), d.id))
    print(device_table(ordered[: args.limit], now))
    return 0


def _watch(args: argparse.Namespace) -> int:
    tty = sys.stdout.isatty()
    try:
        while True:
            devices, counts = asyncio.run(_fetch(args))
            now = datetime.now(UTC)
            ordered = sorted(devices, key=lambda d: (_ORDER.get(d.state, 9), d.id))
            screen = (
                f"clawbeat watch  {now:%Y-%m-%d %H:%M:%S}Z  (Ctrl-C to quit)\n"
                f"{_summary(counts)}\n\n{device_table(ordered[: args.limit], now)}\n"
            )
            sys.stdout.write(("\x1b[H\x1b[2J" if tty else "") + screen)
            sys.stdout.flush()
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
