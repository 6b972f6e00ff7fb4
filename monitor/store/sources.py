"""The ``sources`` table: declared fleets in other conventions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store.models import SourceRow


async def list_sources(session: AsyncSession) -> list[SourceRow]:
    rows = await session.scalars(select(SourceRow).order_by(SourceRow.name))
    return list(rows)


async def put_source(
    session: AsyncSession, *, name: str, kind: str, options: dict[str, Any], at: datetime
) -> tuple[SourceRow, bool]:
    """Create or replace a source; returns it and whether it is new. The caller commits."""
    row = await session.get(SourceRow, name)
    created = row is None
    if row is None:
        row = SourceRow(name=name, kind=kind, options=options, updated_at=at)
        session.add(row)
    else:
        row.kind, row.options, row.updated_at = kind, options, at
    await session.flush()
    return row, created


async def delete_source(session: AsyncSession, *, name: str) -> bool:
    """Delete a source; False if there was none. The caller commits."""
    result = await session.execute(delete(SourceRow).where(SourceRow.name == name))
    return bool(getattr(result, "rowcount", 0))
