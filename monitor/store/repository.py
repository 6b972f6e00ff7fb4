"""Queries and statements. Every function takes the session first and keywords after.

The caller (the shell) opens the session and commits; nothing here commits, so several
calls can share one transaction. Functions return ORM objects that are complete when
returned (no relationship is ever lazy-loaded) or plain values from
:mod:`monitor.store.rows`.

Batch writes use ``INSERT ... ON CONFLICT``, which PostgreSQL and SQLite spell the same
way but SQLAlchemy builds per dialect; ``statements.dialect_insert`` picks the right one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import fields, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Table,
    Text,
    case,
    cast,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store.database import dump_json, translated, translates_errors
from monitor.store.errors import (
    ClassExists,
    ClassInUse,
    ClassNotFound,
    DataRejected,
    DeviceNotFound,
)
from monitor.store.models import (
    DEFAULT_CLASS,
    Base,
    Device,
    DeviceClass,
    TransitionRecord,
)
from monitor.store.rows import (
    ClassSpec,
    DeviceRow,
    RollupRow,
    StoredDevice,
    TransitionRow,
    superseding,
)
from monitor.store.statements import dialect_insert, rowcount

_devices: Final[Table] = Base.metadata.tables["devices"]
_transitions: Final[Table] = Base.metadata.tables["transitions"]
_rollups: Final[Table] = Base.metadata.tables["heartbeat_rollups"]
_classes: Final[Table] = Base.metadata.tables["device_classes"]
_meta: Final[Table] = Base.metadata.tables["monitor_meta"]
_forgotten: Final[Table] = Base.metadata.tables["forgotten_devices"]

# Rows per statement: below both drivers' bind-parameter limits (asyncpg 32767,
# SQLite 32766) for the widest table, and small enough to keep one statement short.
CHUNK_ROWS: Final = 2_000
_LOAD_PARTITION: Final = 10_000
_ROLLUP_FIELDS: Final = tuple(f.name for f in fields(RollupRow))


def _chunks(rows: Sequence[dict[str, Any]]) -> Iterable[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), CHUNK_ROWS):
        yield rows[start : start + CHUNK_ROWS]


def _greatest(current: ColumnElement[Any], incoming: ColumnElement[Any]) -> ColumnElement[Any]:
    # GREATEST ignores NULLs on PostgreSQL but SQLite's max() returns NULL if either
    # side is NULL; a CASE behaves the same on both.
    return case(
        (incoming.is_(None), current),
        (current.is_(None), incoming),
        (incoming > current, incoming),
        else_=current,
    )


# --- runtime writes (the write-behind writer) ---------------------------------------


@translates_errors("upsert devices")
async def upsert_devices(session: AsyncSession, *, rows: Iterable[DeviceRow], now: datetime) -> int:
    """Insert or update the runtime columns of each device; the last row per id wins
    (keeping the earliest ``first_seen``, which only a new row stores).

    Configuration columns (class, override, tags, maintenance) are left alone on
    update and take their defaults on insert. Returns the number of rows written.
    """
    latest: dict[str, DeviceRow] = {}
    for row in rows:
        latest[row.id] = superseding(row, latest.get(row.id))
    params = [
        {
            "id": row.id,
            "state": row.state,
            "since": row.since,
            "reason": row.reason,
            "session": row.session,
            "last_seq": row.last_seq,
            "last_seen": row.last_seen,
            "announced_interval": row.announced_interval,
            "clock_offset": row.clock_offset,
            "fw": row.fw,
            "latest_metrics": dict(row.latest_metrics) if row.latest_metrics is not None else None,
            "first_seen": row.first_seen or now,
            "updated_at": now,
        }
        for row in latest.values()
    ]
    if not params:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        for chunk in _chunks(params):
            await session.execute(_PG_UPSERT_DEVICES, _as_arrays(chunk))
        return len(params)
    stmt = dialect_insert(session, _devices)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[_devices.c.id],
        set_={
            "state": excluded.state,
            "since": excluded.since,
            "reason": excluded.reason,
            "session": excluded.session,
            "last_seq": excluded.last_seq,
            "last_seen": excluded.last_seen,
            "announced_interval": excluded.announced_interval,
            "clock_offset": excluded.clock_offset,
            "fw": func.coalesce(excluded.fw, _devices.c.fw),
            "latest_metrics": func.coalesce(excluded.latest_metrics, _devices.c.latest_metrics),
            "updated_at": excluded.updated_at,
        },
    )
    for chunk in _chunks(params):
        await session.execute(stmt, chunk)
    return len(params)


# PostgreSQL: one statement per chunk, the rows passed as one array per column. Row by
# row (executemany) the server parses, plans and executes each row on its own; here it
# is one plan and one round trip for thousands of rows (several times faster), which is
# what keeps the write-behind ahead of ~10,000 heartbeats/s. Same semantics as the
# portable statement below: runtime columns only, fw and metrics kept when not given.
# Rows are unique per id (the dict above), as ON CONFLICT needs within one statement.
_PG_UPSERT_DEVICES: Final = text(
    """
    INSERT INTO devices (id, state, since, reason, session, last_seq, last_seen,
                         announced_interval, clock_offset, fw, latest_metrics, first_seen,
                         updated_at)
    SELECT u.id, u.state, u.since, u.reason, u.session, u.last_seq, u.last_seen,
           u.announced_interval, u.clock_offset, u.fw, CAST(u.latest_metrics AS jsonb),
           u.first_seen, u.updated_at
    FROM unnest(
        CAST(:id AS varchar[]), CAST(:state AS varchar[]), CAST(:since AS timestamptz[]),
        CAST(:reason AS varchar[]), CAST(:session AS varchar[]), CAST(:last_seq AS bigint[]),
        CAST(:last_seen AS timestamptz[]), CAST(:announced_interval AS float8[]),
        CAST(:clock_offset AS float8[]), CAST(:fw AS varchar[]),
        CAST(:latest_metrics AS text[]), CAST(:first_seen AS timestamptz[]),
        CAST(:updated_at AS timestamptz[])
    ) AS u(id, state, since, reason, session, last_seq, last_seen, announced_interval,
           clock_offset, fw, latest_metrics, first_seen, updated_at)
    ON CONFLICT (id) DO UPDATE SET
        state = EXCLUDED.state,
        since = EXCLUDED.since,
        reason = EXCLUDED.reason,
        session = EXCLUDED.session,
        last_seq = EXCLUDED.last_seq,
        last_seen = EXCLUDED.last_seen,
        announced_interval = EXCLUDED.announced_interval,
        clock_offset = EXCLUDED.clock_offset,
        fw = COALESCE(EXCLUDED.fw, devices.fw),
        latest_metrics = COALESCE(EXCLUDED.latest_metrics, devices.latest_metrics),
        updated_at = EXCLUDED.updated_at
    """
)


def _as_arrays(chunk: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Column arrays for the bulk statement, checked as the ORM column types would.

    Raw arrays bypass the column types, so what they enforce is done here: aware
    datetimes only (a naive one would be read as the server's local time) and JSON that
    serialises; either failing is the data's fault (DataRejected: the writer then
    retries row by row and drops only the bad row).
    """
    columns: dict[str, list[Any]] = {name: [] for name in chunk[0]}
    for row in chunk:
        for name, value in row.items():
            stored = value
            if isinstance(value, datetime) and value.tzinfo is None:
                raise DataRejected(f"{name} of {row['id']!r} has no time zone", operation=_UPSERT)
            if name == "latest_metrics" and value is not None:
                try:
                    stored = dump_json(value)  # the JSON column's own serialiser, by hand
                except (TypeError, ValueError) as exc:
                    raise DataRejected(
                        f"metrics of {row['id']!r}: {exc}", operation=_UPSERT
                    ) from exc
            columns[name].append(stored)
    return columns


_UPSERT: Final = "upsert devices"


@translates_errors("insert transitions")
async def insert_transitions(session: AsyncSession, *, rows: Iterable[TransitionRow]) -> int:
    """Append transitions in the given order; a ``uid`` already stored is skipped.

    Returns the number of rows handed over (skipped duplicates included).
    """
    params = [
        {
            "uid": row.uid,
            "device_id": row.device_id,
            "old_state": row.old_state,
            "new_state": row.new_state,
            "reason": row.reason,
            "session": row.session,
            "at": row.at,
        }
        for row in rows
    ]
    if not params:
        return 0
    stmt = dialect_insert(session, _transitions).on_conflict_do_nothing(
        index_elements=[_transitions.c.uid]
    )
    for chunk in _chunks(params):
        await session.execute(stmt, chunk)
    return len(params)


@translates_errors("add heartbeat rollups")
async def add_rollups(session: AsyncSession, *, rows: Iterable[RollupRow]) -> int:
    """Add each row's figures to the stored (device, minute) row, creating it if needed."""
    merged: dict[tuple[str, datetime], RollupRow] = {}
    for row in rows:
        key = (row.device_id, row.minute)
        if key in merged:
            merged[key].merge(row)
        else:
            # A copy: merging must not change the caller's row.
            merged[key] = replace(row)
    params = [{name: getattr(row, name) for name in _ROLLUP_FIELDS} for row in merged.values()]
    if not params:
        return 0
    stmt = dialect_insert(session, _rollups)
    excluded = stmt.excluded
    column = _rollups.c
    added = ("count", "missed", "latency_count", "latency_sum_ms", "jitter_count", "jitter_sum_ms")
    set_: dict[str, ColumnElement[Any]] = {name: column[name] + excluded[name] for name in added}
    for name in ("latency_max_ms", "jitter_max_ms"):
        set_[name] = _greatest(column[name], excluded[name])
    stmt = stmt.on_conflict_do_update(index_elements=[column.device_id, column.minute], set_=set_)
    for chunk in _chunks(params):
        await session.execute(stmt, chunk)
    return len(params)


# --- reads ----------------------------------------------------------------------------


@translates_errors("load devices")
async def load_devices(session: AsyncSession) -> list[StoredDevice]:
    """Every device, as the monitor needs it to rebuild its in-memory state."""
    snapshots: list[StoredDevice] = []
    async for partition in iter_devices(session):
        snapshots.extend(partition)
    return snapshots


async def iter_devices(
    session: AsyncSession, *, partition: int = _LOAD_PARTITION
) -> AsyncIterator[list[StoredDevice]]:
    """Every device, ``partition`` rows at a time, streamed from the database.

    The monitor's start-up consumes the partitions as they come, so a million devices
    never sit in memory twice (as snapshots and as engine records) at once.
    """
    stmt = _stored_devices().order_by(_devices.c.id)
    # translated() inside: translates_errors wraps coroutines, not async generators, and
    # a database lost mid-stream must still surface as a store error.
    with translated("load devices"):
        result = await session.stream(stmt)
        async for rows in result.partitions(partition):
            yield [_stored_device(row) for row in rows]


@translates_errors("load devices")
async def stored_devices(session: AsyncSession, *, ids: Iterable[str]) -> list[StoredDevice]:
    """Like :func:`iter_devices`, for the given ids only (unknown ids skipped), by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = await session.execute(
        _stored_devices().where(_devices.c.id.in_(wanted)).order_by(_devices.c.id)
    )
    return [_stored_device(row) for row in rows]


def _stored_devices() -> Select[Any]:
    """The columns a :class:`StoredDevice` is made of (one place for both loads)."""
    c = _devices.c
    return select(
        c.id,
        c.state,
        c.since,
        c.reason,
        c.session,
        c.last_seq,
        c.last_seen,
        c.announced_interval,
        c.interval_override,
        c.class_name,
        c.in_maintenance,
        c.clock_offset,
    )


def _stored_device(row: Row[Any]) -> StoredDevice:
    return StoredDevice(
        id=row.id,
        state=row.state,
        since=row.since,
        reason=row.reason,
        session=row.session,
        last_seq=row.last_seq,
        last_seen=row.last_seen,
        announced_interval=row.announced_interval,
        interval_override=row.interval_override,
        class_name=row.class_name,
        in_maintenance=bool(row.in_maintenance),
        clock_offset=row.clock_offset,
    )


@translates_errors("load device tags")
async def device_tags(session: AsyncSession) -> dict[str, frozenset[str]]:
    """The tags of every device that has any (a fleet without tags costs nothing)."""
    rows = await session.execute(
        select(_devices.c.id, _devices.c.tags).where(cast(_devices.c.tags, Text) != "[]")
    )
    return {row.id: frozenset(row.tags or ()) for row in rows}


@translates_errors("get device")
async def get_device(session: AsyncSession, *, device_id: str) -> Device | None:
    # populate_existing: the operator writes below are Core UPDATEs, which do not
    # refresh objects this session already holds.
    return await session.get(Device, device_id, populate_existing=True)


@translates_errors("list devices")
async def list_devices(
    session: AsyncSession,
    *,
    state: str | None = None,
    class_name: str | None = None,
    in_maintenance: bool | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Device]:
    """Devices ordered by id, optionally filtered; ``limit``/``offset`` page through them."""
    stmt = (
        select(Device)
        .order_by(Device.id)
        .offset(offset)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    if state is not None:
        stmt = stmt.where(Device.state == state)
    if class_name is not None:
        stmt = stmt.where(Device.class_name == class_name)
    if in_maintenance is not None:
        stmt = stmt.where(Device.in_maintenance == in_maintenance)
    return list((await session.scalars(stmt)).all())


@translates_errors("read device states")
async def device_states(session: AsyncSession) -> dict[str, str]:
    """Each device's stored state (what its status topic was last told), by id.

    A replica taking over a partition reads this for the whole fleet, so the rows come
    straight from the database driver as pairs: SQLAlchemy result rows cost a second
    per 200,000 devices there (bench/bench_takeover.py).
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    if connection.dialect.name == "postgresql":
        rows = await driver.fetch(_DEVICE_STATES)
    else:
        cursor = await driver.execute(_DEVICE_STATES)
        rows = await cursor.fetchall()
    return dict(rows)


_DEVICE_STATES: Final = "SELECT id, state FROM devices"


@translates_errors("count devices")
async def count_devices_by_state(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(_devices.c.state, func.count()).group_by(_devices.c.state))
    return {state: int(count) for state, count in rows}


@translates_errors("list transitions")
async def list_transitions(
    session: AsyncSession,
    *,
    device_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[TransitionRecord]:
    """Transitions with ``since <= at < until``, in the order they happened.

    Ties on ``at`` are broken by insertion order (``id``), which the writer keeps equal
    to the order the monitor produced them in.
    """
    stmt = select(TransitionRecord)
    if device_id is not None:
        stmt = stmt.where(TransitionRecord.device_id == device_id)
    if since is not None:
        stmt = stmt.where(TransitionRecord.at >= since)
    if until is not None:
        stmt = stmt.where(TransitionRecord.at < until)
    if newest_first:
        stmt = stmt.order_by(TransitionRecord.at.desc(), TransitionRecord.id.desc())
    else:
        stmt = stmt.order_by(TransitionRecord.at, TransitionRecord.id)
    return list((await session.scalars(stmt.limit(limit))).all())


# --- operator writes ----------------------------------------------------------------------


async def _update_device(session: AsyncSession, device_id: str, values: Mapping[str, Any]) -> None:
    result = await session.execute(
        update(_devices).where(_devices.c.id == device_id).values(**values)
    )
    if rowcount(result) == 0:
        raise DeviceNotFound(device_id)


@translates_errors("set interval override")
async def set_interval_override(
    session: AsyncSession, *, device_id: str, interval: float | None, now: datetime
) -> None:
    """Pin a device's expected interval (``None`` returns to its class or announcement)."""
    await _update_device(session, device_id, {"interval_override": interval, "updated_at": now})


@translates_errors("set device class")
async def set_device_class(
    session: AsyncSession, *, device_id: str, class_name: str, now: datetime
) -> None:
    # Checked first so the caller gets ClassNotFound instead of a foreign key error
    # that would also abort a PostgreSQL transaction.
    if await session.get(DeviceClass, class_name) is None:
        raise ClassNotFound(class_name)
    await _update_device(session, device_id, {"class_name": class_name, "updated_at": now})


@translates_errors("set maintenance")
async def set_maintenance(
    session: AsyncSession, *, device_id: str, in_maintenance: bool, now: datetime
) -> None:
    await _update_device(session, device_id, {"in_maintenance": in_maintenance, "updated_at": now})


@translates_errors("set tags")
async def set_tags(
    session: AsyncSession, *, device_id: str, tags: Sequence[str], now: datetime
) -> None:
    await _update_device(session, device_id, {"tags": list(tags), "updated_at": now})


@translates_errors("delete device")
async def delete_device(session: AsyncSession, *, device_id: str) -> None:
    """Forget a device and its history (transitions and rollups)."""
    result = await session.execute(delete(_devices).where(_devices.c.id == device_id))
    if rowcount(result) == 0:
        raise DeviceNotFound(device_id)
    await session.execute(delete(_transitions).where(_transitions.c.device_id == device_id))
    await session.execute(delete(_rollups).where(_rollups.c.device_id == device_id))


@translates_errors("record forgotten device")
async def add_forgotten(session: AsyncSession, *, device_id: str, now: datetime) -> None:
    """Remember that ops forgot ``device_id`` (see ``models.ForgottenDevice``)."""
    stmt = dialect_insert(session, _forgotten).values(id=device_id, forgotten_at=now)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=[_forgotten.c.id], set_={"forgotten_at": now})
    )


@translates_errors("list forgotten devices")
async def forgotten_ids(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(_forgotten.c.id))).all())


@translates_errors("purge forgotten devices")
async def purge_forgotten(session: AsyncSession, *, device_ids: Collection[str]) -> int:
    """Delete rows a write racing ``forget`` put back for tombstoned devices; returns how many."""
    ids = list(device_ids)
    if not ids:
        return 0
    tombstoned = select(_forgotten.c.id).where(_forgotten.c.id.in_(ids))
    result = await session.execute(delete(_devices).where(_devices.c.id.in_(tombstoned)))
    await session.execute(delete(_transitions).where(_transitions.c.device_id.in_(tombstoned)))
    await session.execute(delete(_rollups).where(_rollups.c.device_id.in_(tombstoned)))
    return rowcount(result)


@translates_errors("remove forgotten devices")
async def remove_forgotten(session: AsyncSession, *, device_ids: Collection[str]) -> None:
    """The devices were heard alive again: they are ordinary devices from now on."""
    if device_ids:
        await session.execute(delete(_forgotten).where(_forgotten.c.id.in_(list(device_ids))))


@translates_errors("prune history")
async def prune_history(
    session: AsyncSession,
    *,
    transitions_before: datetime | None = None,
    rollups_before: datetime | None = None,
) -> tuple[int, int]:
    """Delete transitions and rollups older than the given times; returns both counts."""
    removed_transitions = removed_rollups = 0
    if transitions_before is not None:
        result = await session.execute(
            delete(_transitions).where(_transitions.c.at < transitions_before)
        )
        removed_transitions = max(rowcount(result), 0)
    if rollups_before is not None:
        result = await session.execute(delete(_rollups).where(_rollups.c.minute < rollups_before))
        removed_rollups = max(rowcount(result), 0)
    return removed_transitions, removed_rollups


# --- device classes ---------------------------------------------------------------------


def _class_values(spec: ClassSpec) -> dict[str, Any]:
    return {
        "interval": spec.interval,
        "grace": spec.grace,
        "missed_limit": spec.missed_limit,
        "lost_after": spec.lost_after,
        "description": spec.description,
    }


@translates_errors("create device class")
async def create_class(session: AsyncSession, *, spec: ClassSpec) -> DeviceClass:
    # ON CONFLICT DO NOTHING rather than catching a unique violation: on PostgreSQL a
    # failed statement aborts the caller's whole transaction.
    stmt = (
        dialect_insert(session, _classes)
        .values(name=spec.name, **_class_values(spec))
        .on_conflict_do_nothing(index_elements=[_classes.c.name])
    )
    if rowcount(await session.execute(stmt)) != 1:
        raise ClassExists(spec.name)
    created = await session.get(DeviceClass, spec.name, populate_existing=True)
    assert created is not None
    return created


@translates_errors("get device class")
async def get_class(session: AsyncSession, *, name: str) -> DeviceClass | None:
    return await session.get(DeviceClass, name, populate_existing=True)


@translates_errors("list device classes")
async def list_classes(session: AsyncSession) -> list[DeviceClass]:
    stmt = select(DeviceClass).order_by(DeviceClass.name)
    return list((await session.scalars(stmt.execution_options(populate_existing=True))).all())


@translates_errors("update device class")
async def update_class(session: AsyncSession, *, spec: ClassSpec) -> DeviceClass:
    result = await session.execute(
        update(_classes).where(_classes.c.name == spec.name).values(**_class_values(spec))
    )
    if rowcount(result) == 0:
        raise ClassNotFound(spec.name)
    updated = await session.get(DeviceClass, spec.name, populate_existing=True)
    assert updated is not None
    return updated


@translates_errors("delete device class")
async def delete_class(session: AsyncSession, *, name: str) -> None:
    """Delete an unused class; ``default`` and classes with devices are refused."""
    if name == DEFAULT_CLASS:
        raise ClassInUse(name, devices=0)
    members = await session.scalar(
        select(func.count()).select_from(_devices).where(_devices.c.class_name == name)
    )
    if members:
        raise ClassInUse(name, devices=int(members))
    result = await session.execute(delete(_classes).where(_classes.c.name == name))
    if rowcount(result) == 0:
        raise ClassNotFound(name)


# --- monitor metadata ---------------------------------------------------------------------


@translates_errors("read monitor metadata")
async def get_meta(session: AsyncSession, *, key: str) -> str | None:
    return await session.scalar(select(_meta.c.value).where(_meta.c.key == key))


@translates_errors("write monitor metadata")
async def set_meta(session: AsyncSession, *, key: str, value: str, now: datetime) -> None:
    stmt = dialect_insert(session, _meta).values(key=key, value=value, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_meta.c.key],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )
    await session.execute(stmt)


async def iter_device_firmware(
    session: AsyncSession, *, partition: int = _LOAD_PARTITION
) -> AsyncIterator[list[tuple[str, str | None]]]:
    """Every device's id and firmware version, ``partition`` rows at a time."""
    stmt = select(_devices.c.id, _devices.c.fw).order_by(_devices.c.id)
    with translated("load device firmware"):
        result = await session.stream(stmt)
        async for rows in result.partitions(partition):
            yield [(row.id, row.fw) for row in rows]
