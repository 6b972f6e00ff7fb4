"""The configuration version: how a change written to the database is announced.

Whoever changes devices or classes writes a new random version in the same
transaction; every monitor sharing the database polls it and reloads what changed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store import repository

CONFIG_VERSION_KEY: Final = "config_version"


async def read(session: AsyncSession) -> str | None:
    """The current version (``None``: nothing was ever changed)."""
    return await repository.get_meta(session, key=CONFIG_VERSION_KEY)


async def bump(session: AsyncSession) -> tuple[str, str | None]:
    """Announce a change: returns the new version and the one it replaced."""
    previous = await read(session)
    version = uuid.uuid4().hex
    await repository.set_meta(session, key=CONFIG_VERSION_KEY, value=version, now=datetime.now(UTC))
    return version, previous
