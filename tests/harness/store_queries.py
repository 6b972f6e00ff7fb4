"""Reads that only tests make: the monitor itself never lists raw rollup rows (the web
reads sums through ``monitor.store.reports``), so the query lives beside the tests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store.models import HeartbeatRollup


async def list_rollups(
    session: AsyncSession, *, device_id: str, since: datetime, until: datetime
) -> list[HeartbeatRollup]:
    """Per-minute rows with ``since <= minute < until``, oldest first."""
    stmt = (
        select(HeartbeatRollup)
        .where(
            HeartbeatRollup.device_id == device_id,
            HeartbeatRollup.minute >= since,
            HeartbeatRollup.minute < until,
        )
        .order_by(HeartbeatRollup.minute)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).all())
