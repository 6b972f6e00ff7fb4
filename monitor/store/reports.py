"""Read queries for the faces (API, dashboard, CLI): device pages, rollup sums, uptime
inputs, and the repository's reads they share with the service, with the record types
they return. Faces read the store through this module only; writes go through
:mod:`monitor.ops`.

Like :mod:`monitor.store.repository`: the session comes first, nothing commits, errors
are translated to :mod:`monitor.store.errors`. Filtering, sorting and paging happen in
the database (indexed columns), so a page costs the same for ten devices or a million.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from monitor.store.database import translates_errors
from monitor.store.models import Device, DeviceClass, HeartbeatRollup, TransitionRecord
from monitor.store.repository import (
    count_devices_by_state,
    get_class,
    get_device,
    list_classes,
    list_devices,
    list_transitions,
)
from monitor.store.rows import add_figures


class DeviceSort(StrEnum):
    ID = "id"
    STATE = "state"
    """Worst first: lost, offline, stale, late, unknown, maintenance, online."""
    LAST_SEEN = "last_seen"
    SINCE = "since"
    CLASS = "class"
    FW = "fw"


STATE_SEVERITY: Final = ("lost", "offline", "stale", "late", "unknown", "maintenance", "online")


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    state: str | None = None
    class_name: str | None = None
    tag: str | None = None
    text: str | None = None
    """Case-insensitive substring of the device id or firmware version."""
    maintenance: bool | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has_tag(session: AsyncSession, tag: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        # jsonb containment: tags @> '["tag"]'
        return Device.tags.op("@>")(cast(literal(json.dumps([tag])), JSONB))
    each = func.json_each(Device.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == tag))


def _filtered(session: AsyncSession, stmt: Select[Any], flt: DeviceFilter) -> Select[Any]:
    if flt.state is not None:
        stmt = stmt.where(Device.state == flt.state)
    if flt.class_name is not None:
        stmt = stmt.where(Device.class_name == flt.class_name)
    if flt.maintenance is not None:
        stmt = stmt.where(Device.in_maintenance == flt.maintenance)
    if flt.tag is not None:
        stmt = stmt.where(_has_tag(session, flt.tag))
    if flt.text:
        pattern = f"%{_escape_like(flt.text.lower())}%"
        stmt = stmt.where(
            func.lower(Device.id).like(pattern, escape="\\")
            | func.lower(func.coalesce(Device.fw, "")).like(pattern, escape="\\")
        )
    return stmt


def _order(sort: DeviceSort, descending: bool) -> list[ColumnElement[Any]]:
    key: ColumnElement[Any] | QueryableAttribute[Any]
    if sort is DeviceSort.STATE:
        key = case(
            {state: rank for rank, state in enumerate(STATE_SEVERITY)},
            value=Device.state,
            else_=len(STATE_SEVERITY),
        )
    else:
        columns: dict[DeviceSort, QueryableAttribute[Any]] = {
            DeviceSort.ID: Device.id,
            DeviceSort.LAST_SEEN: Device.last_seen,
            DeviceSort.SINCE: Device.since,
            DeviceSort.CLASS: Device.class_name,
            DeviceSort.FW: Device.fw,
        }
        key = columns[sort]
    primary = key.desc() if descending else key.asc()
    # NULLs (never seen, no firmware) last either way; the id makes pages stable.
    return [primary.nulls_last(), Device.id.desc() if descending else Device.id.asc()]


@translates_errors("list devices")
async def page_devices(
    session: AsyncSession,
    *,
    flt: DeviceFilter,
    sort: DeviceSort = DeviceSort.ID,
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[Device]]:
    """``(total matching, one page of devices)``."""
    total = await session.scalar(_filtered(session, select(func.count()).select_from(Device), flt))
    stmt = _filtered(session, select(Device), flt).order_by(*_order(sort, descending))
    stmt = stmt.limit(limit).offset(offset).execution_options(populate_existing=True)
    return int(total or 0), list((await session.scalars(stmt)).all())


@translates_errors("read devices")
async def devices_by_ids(session: AsyncSession, *, ids: Collection[str]) -> list[Device]:
    """The stored rows of ``ids`` (unknown ids left out), by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    stmt = select(Device).where(Device.id.in_(wanted)).order_by(Device.id)
    return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())


@translates_errors("count devices per class")
async def count_devices_by_class(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(Device.class_name, func.count()).group_by(Device.class_name)
    )
    return {name: int(count) for name, count in rows}


@translates_errors("list tags")
async def list_tags(session: AsyncSession, *, limit: int = 500) -> list[str]:
    """Distinct tags in use, alphabetically (for the dashboard's filter)."""
    if session.get_bind().dialect.name == "postgresql":
        # A set-returning function in the select list: one row per tag.
        tag_pg = func.jsonb_array_elements_text(Device.tags).label("tag")
        stmt = select(tag_pg).distinct().order_by("tag").limit(limit)
    else:
        each = func.json_each(Device.tags).table_valued("value")
        tag = cast(each.c.value, String)
        stmt = select(tag).select_from(Device).join(each, literal(True)).distinct()
        stmt = stmt.order_by(tag).limit(limit)
    return [str(v) for v in (await session.scalars(stmt)).all() if v is not None]


@dataclass(frozen=True, slots=True)
class RollupSums:
    """Sums of ``heartbeat_rollups`` for one minute (one device, or all)."""

    minute: datetime
    count: int
    missed: int
    latency_count: int
    latency_sum_ms: float
    latency_max_ms: float | None
    jitter_count: int
    jitter_sum_ms: float
    jitter_max_ms: float | None


@translates_errors("sum heartbeat rollups")
async def rollup_sums(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    device_id: str | None = None,
) -> list[RollupSums]:
    """Per-minute sums over ``since <= minute < until``, oldest first."""
    r = HeartbeatRollup
    stmt = (
        select(
            r.minute,
            func.sum(r.count),
            func.sum(r.missed),
            func.sum(r.latency_count),
            func.sum(r.latency_sum_ms),
            func.max(r.latency_max_ms),
            func.sum(r.jitter_count),
            func.sum(r.jitter_sum_ms),
            func.max(r.jitter_max_ms),
        )
        .where(r.minute >= since, r.minute < until)
        .group_by(r.minute)
        .order_by(r.minute)
    )
    if device_id is not None:
        stmt = stmt.where(r.device_id == device_id)
    rows = await session.execute(stmt)
    return [
        RollupSums(
            minute=_aware(minute),
            count=int(count or 0),
            missed=int(missed or 0),
            latency_count=int(lat_n or 0),
            latency_sum_ms=float(lat_sum or 0.0),
            latency_max_ms=None if lat_max is None else float(lat_max),
            jitter_count=int(jit_n or 0),
            jitter_sum_ms=float(jit_sum or 0.0),
            jitter_max_ms=None if jit_max is None else float(jit_max),
        )
        for minute, count, missed, lat_n, lat_sum, lat_max, jit_n, jit_sum, jit_max in rows
    ]


def _aware(value: datetime) -> datetime:
    # The grouped column keeps its UTCDateTime type, so this is only a safety net.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@translates_errors("read state history")
async def state_history(
    session: AsyncSession, *, device_id: str, since: datetime
) -> tuple[str | None, list[tuple[datetime, str]]]:
    """The device's state just before ``since`` and every change from ``since`` on."""
    t = TransitionRecord
    before = await session.scalar(
        select(t.new_state)
        .where(t.device_id == device_id, t.at < since)
        .order_by(t.at.desc(), t.id.desc())
        .limit(1)
    )
    rows = await session.execute(
        select(t.at, t.new_state)
        .where(and_(t.device_id == device_id, t.at >= since))
        .order_by(t.at, t.id)
    )
    return before, [(at, state) for at, state in rows]


@translates_errors("count transitions")
async def count_transitions(
    session: AsyncSession,
    *,
    device_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    stmt = (
        select(func.count())
        .select_from(TransitionRecord)
        .where(TransitionRecord.device_id == device_id)
    )
    if since is not None:
        stmt = stmt.where(TransitionRecord.at >= since)
    if until is not None:
        stmt = stmt.where(TransitionRecord.at < until)
    return int(await session.scalar(stmt) or 0)


__all__ = [
    "STATE_SEVERITY",
    "Device",
    "DeviceClass",
    "DeviceFilter",
    "DeviceSort",
    "HeartbeatRollup",
    "RollupSums",
    "TransitionRecord",
    "add_figures",
    "count_devices_by_class",
    "count_devices_by_state",
    "count_transitions",
    "devices_by_ids",
    "get_class",
    "get_device",
    "list_classes",
    "list_devices",
    "list_tags",
    "list_transitions",
    "page_devices",
    "rollup_sums",
    "state_history",
]
