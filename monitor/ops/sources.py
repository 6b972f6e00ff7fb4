"""Declared sources: check, store, remove, and load them for the monitor.

``clawbeat sources set`` and ``PUT /api/sources/{name}`` both call :func:`set_source`,
which checks a source with the same code as the sources file before storing it, and
bumps the configuration version: a running monitor re-reads the stored sources when the
version changes (:func:`load_stored`), as it re-reads classes, and subscribes to what a
change adds and unsubscribes from what it drops. Those of ``CLAWBEAT_SOURCES_FILE`` are
read at start only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.ops import config_version
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
    """Check and store a source, and announce the change; the caller commits."""
    check_source(name, kind, options)
    stored = await store.put_source(
        session, name=name, kind=kind, options=dict(options), at=datetime.now(UTC)
    )
    await config_version.bump(session)
    return stored


async def remove_source(session: AsyncSession, *, name: str) -> bool:
    """Delete a stored source; ``False`` if there was none of that name. The caller commits."""
    gone = await store.delete_source(session, name=name)
    if gone:
        await config_version.bump(session)
    return gone


async def list_sources(session: AsyncSession) -> list[SourceRow]:
    """The stored sources, as declared (not checked: a row this clawbeat cannot read is
    still listed, so it can be removed)."""
    return await store.list_sources(session)


@dataclass(frozen=True)
class StoredSource:
    """A stored source as declared, and the adapter made of it."""

    kind: str
    options: dict[str, Any]
    adapter: Adapter


async def stored_adapters(
    sessions: async_sessionmaker[AsyncSession], *, besides: list[Adapter]
) -> dict[str, StoredSource]:
    """The stored sources by name; a name also in ``besides`` (the file) is an error."""
    async with sessions() as session:
        return await load_stored(session, besides=besides)


async def adapters_in(session: AsyncSession, *, besides: list[Adapter]) -> list[Adapter]:
    """The adapters of the stored sources (see :func:`load_stored`)."""
    return [s.adapter for s in (await load_stored(session, besides=besides)).values()]


async def load_stored(
    session: AsyncSession, *, besides: list[Adapter], keep: Mapping[str, StoredSource] | None = None
) -> dict[str, StoredSource]:
    """The stored sources by name, in name order.

    A source in ``keep`` whose kind and options are unchanged keeps its adapter: adapters
    hold state (Sparkplug node sessions and seq counters) that a re-read must not lose.
    """
    rows = await store.list_sources(session)
    taken = {a.name for a in besides}
    stored: dict[str, StoredSource] = {}
    for row in rows:
        if row.name in taken:
            raise SourceConfigError(
                "declared both in the sources file and in the database", source=row.name
            )
        options = dict(row.options)
        kept = (keep or {}).get(row.name)
        if kept is not None and kept.kind == row.kind and kept.options == options:
            stored[row.name] = kept
            continue
        # Checked when stored; checked again, as this clawbeat may be newer than the row.
        stored[row.name] = StoredSource(
            row.kind, options, check_source(row.name, row.kind, options)
        )
    hosts = {
        a.primary_host_id
        for a in [*besides, *(s.adapter for s in stored.values())]
        if isinstance(a, SparkplugAdapter) and a.primary_host_id is not None
    }
    if len(hosts) > 1:
        named = ", ".join(sorted(hosts))
        raise SourceConfigError(f"one primary_host_id per monitor, not {len(hosts)}: {named}")
    return stored
