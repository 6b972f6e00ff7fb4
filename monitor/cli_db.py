"""``clawbeat db``: schema migrations (alembic) on PostgreSQL or SQLite."""

from __future__ import annotations

import argparse
import asyncio

from monitor.cli_common import add_database_option, settings_from
from monitor.store import migrate
from monitor.store.database import display_url


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
    cur = sub.add_parser("current", help="show the schema revision and the one needed")
    add_database_option(cur)
    cur.set_defaults(func=_current)


def _upgrade(args: argparse.Namespace) -> int:
    url = settings_from(args).database_url
    asyncio.run(migrate.upgrade(url, args.revision))
    print(f"{display_url(url)}: schema at {args.revision}")
    return 0


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
