"""The demo's admin token: one per demo database, reused from run to run.

A token is stored only as a hash, so the demo keeps the token itself in its run
directory (mode 0600) to show it again in the banner. A saved token that still verifies
is reused; otherwise every live token of the demo's name is revoked (their plain text is
gone with the run directory) before a new one is made, so restarts never pile up
unrevoked admin tokens.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from monitor.cli_common import db_session
from monitor.store import tokens

DEMO_TOKEN_NAME: Final = "demo"  # noqa: S105 - the token's label, not a secret


def demo_admin_token(database_url: str, path: Path) -> str:
    """The demo's admin token for ``database_url``, saved in ``path``."""
    saved = path.read_text().strip() if path.exists() else ""
    token = asyncio.run(_live_or_new(database_url, saved))
    if token != saved:
        # Written after the commit: should this fail, the next run revokes it by name.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
    return token


async def _live_or_new(database_url: str, saved: str) -> str:
    async with db_session(database_url) as session:
        if saved:
            row = await tokens.verify_token(session, token=saved)
            if (
                row is not None
                and row.name == DEMO_TOKEN_NAME
                and row.scope == tokens.TokenScope.ADMIN
            ):
                return saved
        now = datetime.now(UTC)
        await tokens.revoke_tokens_named(session, name=DEMO_TOKEN_NAME, now=now)
        _, token = await tokens.create_token(
            session, name=DEMO_TOKEN_NAME, scope=tokens.TokenScope.ADMIN, now=now
        )
        await session.commit()
    return token
