"""``clawbeat db``: schema migrations (alembic) on PostgreSQL or SQLite."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

from monitor.cli_common import add_database_option, db_session, settings_from
from monitor.ops.history import prune_history
from monitor.store import migrate
from monitor.store.database import display_url, sqlite_file


def add_db_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("db", help="database schema: upgrade, downgrade, current")
    sub = p.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    up = sub.add_parser("upgrade", help="migrate the schema up (to head by default)")
    up.add_argument("revision", nargs="?", default="head")
    add_database_option(up)
    up.set_defaults(func=_upgrade)
    down = sub.add_parser("downgrade", help="migrate the schema down to a revision (or base)")
    down.add_argument("revision")
    add_database_option(down)
    down.set_defaults(func=_downgrade)
    prune = sub.add_parser(
        "prune",
        help="delete old history (transitions and heartbeat rollups)",
        description="Delete state transitions and per-minute heartbeat figures older than "
        "the given ages. Uptime reports and alerts read transitions: keep at least as much "
        "as the longest report you need (30 days for the dashboard's 30 d uptime). Run it "
        "from cron or a systemd timer.",
    )
    prune.add_argument(
        "--transitions-days", type=float, default=None, help="keep this many days of transitions"
    )
    prune.add_argument(
        "--rollups-days", type=float, default=None, help="keep this many days of rollups"
    )
    add_database_option(prune)
    prune.set_defaults(func=_prune)
    cur = sub.add_parser("current", help="show the schema revision and the one needed")
    add_database_option(cur)
    cur.set_defaults(func=_current)


def _upgrade(args: argparse.Namespace) -> int:
    url = settings_from(args).database_url
    asyncio.run(migrate.upgrade(url, args.revision))
    print(f"{display_url(url)}: schema at {args.revision}")
    _warn_if_readable_by_others(url)
    return 0


def _warn_if_readable_by_others(url: str) -> None:
    """A SQLite file made before clawbeat created them private (or copied carelessly)."""
    path = sqlite_file(url)
    if path is None:
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        print(
            f"warning: {path} (mode {mode:04o}) can be read by other users, and it holds "
            f"API token hashes and alert channel secrets: chmod 600 {path}",
            file=sys.stderr,
        )


def _downgrade(args: argparse.Namespace) -> int:
    url = settings_from(args).database_url
    asyncio.run(migrate.downgrade(url, args.revision))
    print(f"{display_url(url)}: schema at {args.revision}")
    return 0


def _current(args: argparse.Namespace) -> int:
    url = settings_from(args).database_url
    rev = asyncio.run(migrate.current(url))
    print(
        f"{display_url(url)}: schema at {rev or 'nothing (empty database)'}; "
        f"this clawbeat needs {migrate.head()}"
    )
    return 0 if rev == migrate.head() else 1


def _prune(args: argparse.Namespace) -> int:
    if args.transitions_days is None and args.rollups_days is None:
        print("nothing to do: give --transitions-days and/or --rollups-days", file=sys.stderr)
        return 2
    for value in (args.transitions_days, args.rollups_days):
        if value is not None and value < 1:
            print("keep at least one day of history", file=sys.stderr)
            return 2
    now = datetime.now(UTC)

    def before(days: float | None) -> datetime | None:
        return None if days is None else now - timedelta(days=days)

    async def run() -> tuple[int, int]:
        async with db_session(settings_from(args).database_url) as session:
            removed = await prune_history(
                session,
                transitions_before=before(args.transitions_days),
                rollups_before=before(args.rollups_days),
            )
            await session.commit()
            return removed

    transitions, rollups = asyncio.run(run())
    print(f"removed {transitions} transitions and {rollups} rollup rows")
    return 0
