"""``clawbeat sources ...``: fleets in other conventions, stored in the database.

Stored sources are read by the monitor when it starts, next to those of
``CLAWBEAT_SOURCES_FILE``, and again whenever they change (the configuration version, as
for classes): a running monitor applies a change within its one-second config poll.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tomllib
from pathlib import Path
from typing import Any

from broker.acl import MONITOR_USER
from monitor.cli_common import add_database_option, db_session, settings_from
from monitor.cli_table import print_table
from monitor.ops.sources import adapters_in, list_sources, remove_source, set_source
from monitor.sources.acl import source_acl
from monitor.sources.base import Adapter
from monitor.sources.config import SourceConfigError, load_sources

_KINDS = ("sparkplug", "tasmota", "esphome", "zigbee2mqtt", "shelly", "generic")


def add_sources_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sources = subparsers.add_parser(
        "sources", help="fleets in other conventions (Sparkplug B, Tasmota, ...)"
    )
    sub = sources.add_subparsers(dest="sources_command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="list stored sources")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_database_option(p)
    p.set_defaults(func=_list)
    p = sub.add_parser(
        "set",
        help="create or replace a source",
        description="Create or replace a source. Options are KEY=VALUE, the keys of a "
        "[[source]] table in docs/adapters.md; VALUE is read as TOML (60, true, "
        '"text") or else taken as text. A running monitor applies it within a second.',
    )
    p.add_argument("name")
    p.add_argument("kind", choices=_KINDS)
    p.add_argument("options", nargs="*", metavar="KEY=VALUE")
    add_database_option(p)
    p.set_defaults(func=_set)
    p = sub.add_parser(
        "acl",
        help="print the broker ACL lines the sources need (append them to the ACL)",
        description="Print Mosquitto ACL lines for the monitor's user: read the sources' "
        "topics (file and stored), write Sparkplug rebirth requests, and the primary "
        "host user's STATE topic. Append them to the file `clawbeat broker acl` writes.",
    )
    p.add_argument("--sources-file", type=Path, help="the sources file (env CLAWBEAT_SOURCES_FILE)")
    p.add_argument("--monitor-user", default=MONITOR_USER, help="the monitor's broker user")
    p.add_argument("--host-user", help="the Sparkplug primary host's broker user")
    add_database_option(p)
    p.set_defaults(func=_acl)
    p = sub.add_parser(
        "remove", help="delete a stored source (a running monitor stops watching it)"
    )
    p.add_argument("name")
    add_database_option(p)
    p.set_defaults(func=_remove)


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SourceConfigError(f"option {pair!r} is not KEY=VALUE")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # bare text: a topic, a group id
        options[key] = value
    return options


def _set(args: argparse.Namespace) -> int:
    options = _options(args.options)

    async def run() -> bool:
        async with db_session(settings_from(args).database_url) as session:
            _row, created = await set_source(
                session, name=args.name, kind=args.kind, options=options
            )
            await session.commit()
            return created

    created = asyncio.run(run())
    print(
        f"source {args.name!r} {'created' if created else 'replaced'}; "
        "a running monitor applies it within a second"
    )
    return 0


def _remove(args: argparse.Namespace) -> int:
    async def run() -> bool:
        async with db_session(settings_from(args).database_url) as session:
            gone = await remove_source(session, name=args.name)
            await session.commit()
            return gone

    if not asyncio.run(run()):
        raise SourceConfigError(f"no stored source {args.name!r}")
    print(f"source {args.name!r} removed; a running monitor stops watching it within a second")
    return 0


def _acl(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    adapters = load_sources(settings.sources_file) if settings.sources_file else []

    async def stored() -> list[Adapter]:
        async with db_session(settings.database_url) as session:
            return await adapters_in(session, besides=adapters)

    adapters += asyncio.run(stored())
    print(source_acl(adapters, monitor_user=args.monitor_user, host_user=args.host_user), end="")
    return 0


def _list(args: argparse.Namespace) -> int:
    async def run() -> list[tuple[str, str, dict[str, Any]]]:
        async with db_session(settings_from(args).database_url) as session:
            return [(r.name, r.kind, dict(r.options)) for r in await list_sources(session)]

    rows = asyncio.run(run())
    if args.json:
        print(json.dumps([{"name": n, "kind": k, "options": o} for n, k, o in rows]))
        return 0
    print_table(
        ("SOURCE", "KIND", "OPTIONS"),
        [(n, k, " ".join(f"{key}={json.dumps(v)}" for key, v in o.items())) for n, k, o in rows],
    )
    return 0
