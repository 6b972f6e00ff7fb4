"""Declared sources: check, store, remove, and load them for the monitor.

``clawbeat sources set`` and ``PUT /api/sources/{name}`` both call :func:`set_source`,
which checks a source with the same code as the sources file before storing it. The
monitor reads stored sources when it starts (:func:`stored_adapters`), next to those of
``CLAWBEAT_SOURCES_FILE``; a change applies at the next start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.sources.base import Adapter
from monitor.sources.config import SourceConfigError, parse_sources
from monitor.sources.sparkplug import SparkplugAdapter
from monitor.store import sources as store
from monitor.store.models import SourceRow


def check_source(name: str, kind: str, options: dict[str, Any]) -> Adapter:
    """The adapter a source makes, or :class:`SourceConfigError` saying what is wrong."""
    for key in ("name", "kind"):
        if key in options:
            raise SourceConfigError(f"{key!r} is not an option", source=name)
    return parse_sources({"source": [{"name": name, "kind": kind, **options}]})[0]


async def set_source(
    session: AsyncSession, *, name: str, kind: str, options: dict[str, Any]
) -> tuple[SourceRow, bool]:
    check_source(name, kind, options)
    return await store.put_source(
        session, name=name, kind=kind, options=dict(options), at=datetime.now(UTC)
    )


async def remove_source(session: AsyncSession, *, name: str) -> bool:
    """Delete a stored source; ``False`` if there was none of that name."""
    return await store.delete_source(session, name=name)


async def list_sources(session: AsyncSession) -> list[SourceRow]:
    """The stored sources, as declared (not checked: a row this clawbeat cannot read is
    still listed, so it can be removed)."""
    return await store.list_sources(session)


async def stored_adapters(
    sessions: async_sessionmaker[AsyncSession], *, besides: list[Adapter]
) -> list[Adapter]:
    """Adapters of the stored sources; a name also in ``besides`` (the file) is an error."""
    async with sessions() as session:
        return await adapters_in(session, besides=besides)


async def adapters_in(session: AsyncSession, *, besides: list[Adapter]) -> list[Adapter]:
    """:func:`stored_adapters` on an open session."""
    rows = await store.list_sources(session)
    taken = {a.name for a in besides}
    adapters: list[Adapter] = []
    for row in rows:
        if row.name in taken:
            raise SourceConfigError(
                "declared both in the sources file and in the database", source=row.name
            )
        # Checked when stored; checked again, as this clawbeat may be newer than the row.
        adapters.append(check_source(row.name, row.kind, dict(row.options)))
    hosts = {
        a.primary_host_id
        for a in [*besides, *adapters]
        if isinstance(a, SparkplugAdapter) and a.primary_host_id is not None
    }
    if len(hosts) > 1:
        named = ", ".join(sorted(hosts))
        raise SourceConfigError(f"one primary_host_id per monitor, not {len(hosts)}: {named}")
    return adapters
