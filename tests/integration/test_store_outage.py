"""Fault test: PostgreSQL stops under a running writer and comes back.

The writer must keep accepting rows, not crash, log the outage once and the recovery
once, and converge afterwards with every transition written exactly once and in order,
and every device at its latest state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from monitor.store import migrate, repository
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.errors import StoreUnavailable
from monitor.store.models import TransitionRecord
from monitor.store.rows import DeviceRow, TransitionRow
from monitor.store.writer import WriteBehind
from tests.harness.db_fixtures import open_store
from tests.harness.postgres import RestartableServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DEVICES = 10
OUTAGE_SECONDS = 3.0


class Producer:
    """Puts device rows and transitions the way the monitor shell does."""

    def __init__(self, writer: WriteBehind) -> None:
        self.writer = writer
        self.seq = 0
        self.transitions: list[TransitionRow] = []
        self.latest: dict[str, DeviceRow] = {}

    async def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.seq += 1
            at = T0 + timedelta(milliseconds=self.seq)
            for n in range(DEVICES):
                row = DeviceRow(
                    id=f"dev-{n}",
                    state="up",
                    since=T0,
                    session="s1",
                    last_seq=self.seq,
                    last_seen=at,
                )
                self.writer.put_device(row)
                self.latest[row.id] = row
            flapping = f"dev-{self.seq % DEVICES}"
            old, new = ("up", "late") if self.seq % 2 else ("late", "up")
            transition = TransitionRow(flapping, old, new, at, reason="test")
            self.writer.put_transition(transition)
            self.transitions.append(transition)
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_writer_converges_after_a_database_outage(
    pg_cluster: RestartableServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="clawbeat.store.writer")
    url = await asyncio.to_thread(pg_cluster.create_database, "outage")
    await migrate.upgrade(url)
    engine = create_engine_for(url, connect_timeout=2.0)
    flushed_ok = asyncio.Event()
    writer = WriteBehind(
        make_session_factory(engine),
        flush_interval=0.2,
        retry_initial=0.1,
        retry_max=0.5,
        flush_timeout=5.0,
        on_flush=lambda report: flushed_ok.set() if report.ok else None,
    )
    task = asyncio.create_task(writer.run())
    producer = Producer(writer)
    try:
        await producer.run_for(1.0)
        assert writer.db_ok

        await asyncio.to_thread(pg_cluster.stop, mode=mode)
        await producer.run_for(OUTAGE_SECONDS)
        assert not task.done()
        assert not writer.db_ok
        assert writer.last_error is not None
        assert writer.pending_transitions > 0
        # Device rows are coalesced: the buffer holds at most one row per device.
        assert writer.pending_devices <= DEVICES
        assert writer.lag_seconds > 1.0
        with pytest.raises(StoreUnavailable):
            await writer.flush()
        with pytest.raises(StoreUnavailable):
            await migrate.check_schema(url)

        flushed_ok.clear()
        await asyncio.to_thread(pg_cluster.start)
        # The run loop recovers by itself: nothing but its retries flushes here.
        await asyncio.wait_for(flushed_ok.wait(), 30)
        assert writer.db_ok, writer.last_error
        await producer.run_for(1.0)
        assert writer.lag_seconds < 1.0
        assert await writer.close()
        await asyncio.wait_for(task, 10)
    finally:
        if not task.done():
            task.cancel()
        await engine.dispose()

    async with open_store(url) as sessions, sessions() as session:
        stored = list(
            (await session.scalars(select(TransitionRecord).order_by(TransitionRecord.id))).all()
        )
        devices = {d.id: d for d in await repository.load_devices(session)}
    # Every transition exactly once, in the order it was put.
    assert [t.uid for t in stored] == [t.uid for t in producer.transitions]
    assert {d: (s.last_seq, s.last_seen) for d, s in devices.items()} == {
        d: (r.last_seq, r.last_seen) for d, r in producer.latest.items()
    }
    assert writer.stats.outages == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database unavailable" in m for m in messages) == 1
    assert sum("database is back" in m for m in messages) == 1
    assert writer.stats.failed_flushes > 1  # it did retry, quietly


async def test_first_seen_survives_a_database_outage(pg_cluster: RestartableServer) -> None:
    # A device first seen while the database is down, and seen again before it is
    # back: its row, written after the outage, says when it was first seen.
    url = await asyncio.to_thread(pg_cluster.create_database, "first_seen")
    await migrate.upgrade(url)
    engine = create_engine_for(url, connect_timeout=2.0)
    writer = WriteBehind(make_session_factory(engine), flush_interval=60.0, flush_timeout=5.0)
    try:
        await asyncio.to_thread(pg_cluster.stop, mode="fast")
        writer.put_device(DeviceRow(id="early", state="up", since=T0, first_seen=T0))
        with pytest.raises(StoreUnavailable):
            await writer.flush()
        later = T0 + timedelta(seconds=40)
        writer.put_device(DeviceRow(id="early", state="late", since=later, first_seen=later))
        with pytest.raises(StoreUnavailable):
            await writer.flush()
        await asyncio.to_thread(pg_cluster.start)
        await writer.flush()
        assert await writer.close()
    finally:
        await engine.dispose()
    async with open_store(url) as sessions, sessions() as session:
        stored = await repository.get_device(session, device_id="early")
    assert stored is not None
    assert (stored.state, stored.first_seen) == ("late", T0)
