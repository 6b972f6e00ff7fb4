"""The start-up stream of stored devices (plain tuples from the driver), on both databases:
it says exactly what the ORM path says, times to the last bit included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from monitor.liveness.persisted import PersistedDevice
from monitor.state_rows import engine_snapshot
from monitor.store import repository
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.device_stream import stream_devices
from monitor.store.rows import ClassSpec, DeviceRow

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 1, 12, 0, 0, 123457, tzinfo=UTC)


async def _seed(url: str) -> None:
    engine = create_engine_for(url)
    sessions = make_session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            await repository.create_class(session, spec=ClassSpec(name="meters", interval=60.0))
            rows = [
                DeviceRow(
                    id=f"d{i:04d}",
                    state=("online", "late", "stale", "offline", "lost")[i % 5],
                    # Odd microseconds, far and near: every bit of the epoch seconds counts.
                    since=NOW - timedelta(days=i, microseconds=7 * i),
                    reason=None if i % 3 else "heartbeat",
                    session=None if i % 7 == 0 else f"s{i}",
                    last_seq=None if i % 4 == 0 else i,
                    last_seen=None if i % 6 == 0 else NOW - timedelta(seconds=i, microseconds=i),
                    announced_interval=None if i % 2 else 30.0,
                    clock_offset=None if i % 5 else -0.25 * i,
                )
                for i in range(2_500)
            ]
            await repository.upsert_devices(session, rows=rows, now=NOW)
            await repository.set_interval_override(
                session, device_id="d0001", interval=5.0, now=NOW
            )
            await repository.set_maintenance(
                session, device_id="d0002", in_maintenance=True, now=NOW
            )
            await repository.set_device_class(
                session, device_id="d0003", class_name="meters", now=NOW
            )
            # A word a newer version might write, and a time without a fraction.
            await session.execute(text("UPDATE devices SET state = 'napping' WHERE id = 'd0004'"))
        if url.startswith("sqlite"):
            async with sessions() as session, session.begin():
                await session.execute(
                    text("UPDATE devices SET since = '2026-03-01 11:00:00' WHERE id = 'd0005'")
                )
    finally:
        await engine.dispose()


async def test_the_stream_says_what_the_orm_rows_say(database_url: str) -> None:
    await _seed(database_url)
    engine = create_engine_for(database_url)
    sessions = make_session_factory(engine)
    try:
        async with sessions() as session:
            expected: dict[str, PersistedDevice] = {}
            async for part in repository.iter_devices(session):
                for stored in part:
                    s = engine_snapshot(stored)
                    expected[s.device_id] = (
                        s.device_id,
                        stored.state,
                        s.since_wall,
                        stored.reason,
                        s.session,
                        s.last_seq,
                        s.last_seen_wall,
                        s.announced_interval,
                        s.override_interval,
                        s.device_class,
                        s.in_maintenance,
                        s.clock_offset,
                    )
        async with sessions() as session:
            # Small chunks: the stream is stitched from many fetches.
            got = [row async for rows in stream_devices(session, chunk=300) for row in rows]
    finally:
        await engine.dispose()
    assert len(got) == 2_500
    streamed = {row[0]: (*row[:10], bool(row[10]), row[11]) for row in got}
    assert streamed == expected
    assert streamed["d0004"][1] == "napping"


async def test_the_stream_keeps_only_the_ids_asked_for(database_url: str) -> None:
    await _seed(database_url)
    engine = create_engine_for(database_url)
    sessions = make_session_factory(engine)
    try:
        async with sessions() as session:
            # A statement first, as the start-up load makes: the stream then runs inside
            # the session's transaction.
            await repository.list_classes(session)
            ids = [
                row[0]
                async for rows in stream_devices(session, chunk=1000, keep=lambda i: i < "d0100")
                for row in rows
            ]
            # The connection is usable afterwards.
            assert await repository.get_meta(session, key="nothing") is None
    finally:
        await engine.dispose()
    assert sorted(ids) == [f"d{i:04d}" for i in range(100)]


async def test_device_states_says_what_every_row_holds(database_url: str) -> None:
    await _seed(database_url)
    engine = create_engine_for(database_url)
    sessions = make_session_factory(engine)
    try:
        async with sessions() as session:
            states = await repository.device_states(session)
            stored = [d async for part in repository.iter_devices(session) for d in part]
            # The connection is usable afterwards.
            assert await repository.get_meta(session, key="nothing") is None
    finally:
        await engine.dispose()
    assert states == {d.id: d.state for d in stored}
    assert len(states) == 2_500
    assert states["d0004"] == "napping"
    assert all(type(k) is str and type(v) is str for k, v in states.items())
