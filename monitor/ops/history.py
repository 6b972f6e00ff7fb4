"""Pruning history: ``clawbeat db prune``.

Transitions and per-minute rollups grow with the fleet's age; ops keep what their
uptime reports need and drop the rest. Device rows and open alerts are never touched.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store import repository


async def prune_history(
    session: AsyncSession,
    *,
    transitions_before: datetime | None = None,
    rollups_before: datetime | None = None,
) -> tuple[int, int]:
    """Delete transitions and rollups older than the given times; returns both counts."""
    return await repository.prune_history(
        session, transitions_before=transitions_before, rollups_before=rollups_before
    )
