"""``clawbeat token create|list|revoke``: bearer tokens for the HTTP API.

Tokens live in the monitor's database (hashed), so a token created here works at once
on every monitor sharing that database; revoking one takes effect within a few seconds
(the API caches verified tokens briefly).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import socket
import sys
from datetime import UTC, datetime

from monitor.cli_common import add_database_option, db_session, settings_from
from monitor.cli_table import print_table
from monitor.store import tokens
from monitor.timefmt import iso


def add_token_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "token",
        help="bearer tokens for the HTTP API and dashboard",
        description="Create, list and revoke API tokens. A 'read' token may call every GET "
        "endpoint and open the dashboard; an 'admin' token may also change devices, "
        "classes and alerts. Only a hash of each token is stored.",
    )
    sub = p.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    create = sub.add_parser("create", help="create a token and print it (shown only once)")
    create.add_argument("--scope", choices=[s.value for s in tokens.TokenScope], required=True)
    create.add_argument("--name", help="what the token is for (default: user@host)")
    create.add_argument("--json", action="store_true", help="print id, name, scope and token")
    add_database_option(create)
    create.set_defaults(func=_create)
    listing = sub.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    add_database_option(listing)
    listing.set_defaults(func=_list)
    revoke = sub.add_parser("revoke", help="revoke a token by its id (see `token list`)")
    revoke.add_argument("token_id", type=int)
    add_database_option(revoke)
    revoke.set_defaults(func=_revoke)


def _default_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[: tokens.NAME_LENGTH]


def _create(args: argparse.Namespace) -> int:
    name = args.name if args.name is not None else _default_name()

    async def run() -> tuple[tokens.ApiToken, str]:
        async with db_session(settings_from(args).database_url) as session:
            row, token = await tokens.create_token(
                session, name=name, scope=tokens.TokenScope(args.scope), now=datetime.now(UTC)
            )
            await session.commit()
            return row, token

    try:
        row, token = asyncio.run(run())
    except ValueError as exc:
        print(f"clawbeat token create: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"id": row.id, "name": row.name, "scope": row.scope, "token": token}))
    else:
        print(token)
        print(
            f"token {row.id} ({row.scope}, {row.name!r}) created; it is shown only this once",
            file=sys.stderr,
        )
    return 0


def _row(token: tokens.ApiToken) -> dict[str, object]:
    def when(value: datetime | None) -> str | None:
        return None if value is None else iso(value.timestamp())

    return {
        "id": token.id,
        "name": token.name,
        "scope": token.scope,
        "prefix": token.prefix,
        "created": when(token.created_at),
        "last_used": when(token.last_used_at),
        "revoked": when(token.revoked_at),
    }


def _list(args: argparse.Namespace) -> int:
    async def run() -> list[tokens.ApiToken]:
        async with db_session(settings_from(args).database_url) as session:
            return await tokens.list_tokens(session, include_revoked=args.all)

    rows = [_row(t) for t in asyncio.run(run())]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    keys = ("id", "name", "scope", "prefix", "created", "last_used", "revoked")
    print_table(
        [k.upper().replace("_", " ") for k in keys],
        [["-" if row[k] is None else str(row[k]) for k in keys] for row in rows],
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    async def run() -> bool:
        async with db_session(settings_from(args).database_url) as session:
            done = await tokens.revoke_token(session, token_id=args.token_id, now=datetime.now(UTC))
            await session.commit()
            return done

    if asyncio.run(run()):
        print(f"token {args.token_id} revoked")
    else:
        print(f"token {args.token_id} was already revoked")
    return 0
