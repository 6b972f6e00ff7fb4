"""The write-behind writer against real PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.store import repository
from monitor.store.database import create_engine_for, make_session_factory
from monitor.store.errors import WriterClosed
from monitor.store.rows import DeviceRow, TransitionRow
from monitor.store.writer import FlushReport, WriteBehind
from tests.harness.store_queries import list_rollups

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]
_INSERT = re.compile(r"\s*INSERT INTO (\w+)")


@asynccontextmanager
async def counting_store(url: str) -> AsyncIterator[tuple[Sessions, Counter[str]]]:
    """Sessions on ``url`` plus a count of rows sent to the database per INSERT table."""
    engine = create_engine_for(url)
    rows_sent: Counter[str] = Counter()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if match := _INSERT.match(statement):
            if "unnest(" in statement:
                # PostgreSQL's bulk path: one statement, one array of rows per column.
                first = parameters[0] if isinstance(parameters, list | tuple) else None
                rows_sent[match.group(1)] += len(first) if first is not None else 1
            else:
                rows_sent[match.group(1)] += len(parameters) if executemany else 1

    try:
        yield make_session_factory(engine), rows_sent
    finally:
        await engine.dispose()


def device(device_id: str, seq: int, state: str = "up") -> DeviceRow:
    at = T0 + timedelta(seconds=seq)
    return DeviceRow(id=device_id, state=state, since=T0, session="s1", last_seq=seq, last_seen=at)


async def test_many_updates_in_one_window_are_one_row_write_per_device(database_url: str) -> None:
    async with counting_store(database_url) as (sessions, rows_sent):
        writer = WriteBehind(sessions, flush_interval=60.0)
        for seq in range(50):
            for n in range(20):
                writer.put_device(device(f"dev-{n}", seq))
        assert writer.pending_devices == 20
        await writer.flush()
        async with sessions() as session:
            stored = await repository.load_devices(session)
    assert rows_sent["devices"] == 20
    assert writer.stats.device_puts == 1000
    assert writer.stats.devices_written == 20
    assert writer.pending_devices == 0
    assert writer.lag_seconds == 0.0
    assert {s.id: s.last_seq for s in stored} == {f"dev-{n}": 49 for n in range(20)}


async def test_the_run_loop_writes_a_device_at_most_once_per_window(database_url: str) -> None:
    interval = 0.25
    async with counting_store(database_url) as (sessions, rows_sent):
        writer = WriteBehind(sessions, flush_interval=interval)
        task = asyncio.create_task(writer.run())
        started = time.monotonic()
        seq = 0
        while time.monotonic() - started < 1.0:
            seq += 1
            for n in range(5):
                writer.put_device(device(f"dev-{n}", seq))
            await asyncio.sleep(0.005)
        assert await writer.close()
        elapsed = time.monotonic() - started
        await task
        async with sessions() as session:
            stored = await repository.load_devices(session)
    windows = int(elapsed / interval) + 2  # a partial window at each end (close flushes)
    assert seq > 50  # many more updates than windows
    assert 5 <= rows_sent["devices"] <= 5 * windows
    assert {s.id: s.last_seq for s in stored} == {f"dev-{n}": seq for n in range(5)}


async def test_transitions_are_committed_long_before_the_window_ends(database_url: str) -> None:
    async with counting_store(database_url) as (sessions, _):
        writer = WriteBehind(sessions, flush_interval=10.0)
        task = asyncio.create_task(writer.run())
        await asyncio.sleep(0.05)  # the loop is waiting for its window
        writer.put_device(device("a", 1, state="down"))
        transition = TransitionRow("a", "up", "down", T0, reason="missed")
        put_at = time.monotonic()
        writer.put_transition(transition)
        committed: list[Any] = []
        while not committed and time.monotonic() - put_at < 5.0:
            await asyncio.sleep(0.01)
            async with sessions() as session:
                committed = await repository.list_transitions(session, device_id="a")
        latency = time.monotonic() - put_at
        async with sessions() as session:
            device_rows = await repository.load_devices(session)
        assert await writer.close()
        await task
        async with sessions() as session:
            device_rows_after_close = await repository.load_devices(session)
    assert [t.uid for t in committed] == [transition.uid]
    assert latency < 1.0, f"transition took {latency:.2f}s with a 10s window"
    # The device row waits for its window (or close): coalescing is not defeated by
    # the prompt transition flush.
    assert device_rows == []
    assert [d.state for d in device_rows_after_close] == ["down"]


async def test_transitions_are_written_in_the_order_they_were_put(database_url: str) -> None:
    async with counting_store(database_url) as (sessions, _):
        writer = WriteBehind(sessions)
        states = ["up", "late", "down"]
        put = [
            TransitionRow(f"d{n % 3}", states[n % 3], states[(n + 1) % 3], T0)  # same instant
            for n in range(300)
        ]
        for row in put:
            writer.put_transition(row)
        await writer.flush()
        async with sessions() as session:
            stored = await repository.list_transitions(session)
    assert [t.uid for t in stored] == [r.uid for r in put]
    assert writer.pending_transitions == 0


async def test_rollups_are_added_up_in_memory_and_in_the_database(database_url: str) -> None:
    async with counting_store(database_url) as (sessions, rows_sent):
        writer = WriteBehind(sessions)
        for n in range(100):
            writer.add_rollup("a", T0 + timedelta(seconds=n % 60), latency_ms=float(n))
        writer.add_rollup("a", T0 + timedelta(seconds=75), count=0, missed=2, jitter_ms=3.5)
        assert writer.pending_rollups == 2
        await writer.flush()
        assert rows_sent["heartbeat_rollups"] == 2
        writer.add_rollup("a", T0 + timedelta(seconds=10), latency_ms=500.0)
        await writer.flush()
        async with sessions() as session:
            rows = await list_rollups(
                session, device_id="a", since=T0, until=T0 + timedelta(hours=1)
            )
    first, second = rows
    assert first.minute == T0
    assert second.minute == T0 + timedelta(minutes=1)
    assert (first.count, first.missed) == (101, 0)
    assert first.latency_count == 101
    assert first.latency_sum_ms == sum(range(100)) + 500.0
    assert first.latency_max_ms == 500.0
    assert (second.count, second.missed, second.jitter_max_ms) == (0, 2, 3.5)
    assert second.latency_max_ms is None


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    "bad",
    [
        # Not JSON: the database layer refuses it, and retrying cannot help.
        DeviceRow(id="bad", state="up", since=T0, latest_metrics={"x": object()}),
        # No driver can encode a lone surrogate; no JSON encoder recurses this deep.
        # The protocol keeps both out; should one get this far, it costs its row only.
        DeviceRow(id="bad", state="up", since=T0, fw="v\ud800"),
        DeviceRow(id="bad", state="up", since=T0, latest_metrics={"x": _nested(5000)}),
    ],
    ids=["not JSON", "lone surrogate", "nested too deep"],
)
async def test_a_row_the_database_refuses_is_dropped_alone(
    database_url: str, caplog: pytest.LogCaptureFixture, bad: DeviceRow
) -> None:
    async with counting_store(database_url) as (sessions, _):
        writer = WriteBehind(sessions)
        writer.put_device(device("good-1", 1))
        writer.put_device(bad)
        writer.put_device(device("good-2", 1))
        with caplog.at_level(logging.WARNING, logger="clawbeat.store.writer"):
            await writer.flush()
        async with sessions() as session:
            stored = {s.id for s in await repository.load_devices(session)}
    assert stored == {"good-1", "good-2"}
    assert writer.stats.rows_rejected == 1
    assert writer.db_ok
    assert writer.pending_devices == 0
    assert any("dropping device bad" in r.getMessage() for r in caplog.records)


async def test_close_writes_what_is_left_and_refuses_more(database_url: str) -> None:
    async with counting_store(database_url) as (sessions, _):
        writer = WriteBehind(sessions, flush_interval=60.0)
        task = asyncio.create_task(writer.run())
        writer.put_device(device("a", 1))
        writer.put_transition(TransitionRow("a", None, "up", T0))
        writer.add_rollup("a", T0)
        assert await writer.close() is True
        await asyncio.wait_for(task, 5)
        with pytest.raises(WriterClosed):
            writer.put_device(device("a", 2))
        async with sessions() as session:
            assert [d.id for d in await repository.load_devices(session)] == ["a"]
            assert len(await repository.list_transitions(session)) == 1
            assert (
                len(
                    await list_rollups(
                        session, device_id="a", since=T0, until=T0 + timedelta(minutes=1)
                    )
                )
                == 1
            )


async def test_naive_datetimes_are_refused_when_put(database_url: str) -> None:
    async with counting_store(database_url) as (sessions, _):
        writer = WriteBehind(sessions)
        naive = datetime(2026, 3, 1, 12, 0)
        with pytest.raises(ValueError, match="timezone-aware"):
            writer.put_device(DeviceRow(id="a", state="up", since=naive))
        with pytest.raises(ValueError, match="timezone-aware"):
            writer.put_transition(TransitionRow("a", None, "up", naive))
        with pytest.raises(ValueError, match="timezone-aware"):
            writer.add_rollup("a", naive)


async def test_past_the_cap_the_oldest_transitions_are_dropped_loudly(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with counting_store(database_url) as (sessions, _):
        writer = WriteBehind(sessions, max_pending_transitions=5)
        put = [TransitionRow("a", None, "up", T0 + timedelta(seconds=n)) for n in range(8)]
        with caplog.at_level(logging.ERROR, logger="clawbeat.store.writer"):
            for row in put:
                writer.put_transition(row)
        assert writer.pending_transitions == 5
        assert writer.stats.transitions_dropped == 3
        full_logs = [
            r for r in caplog.records if "buffer for transitions is full" in r.getMessage()
        ]
        assert len(full_logs) == 1  # once per episode, not once per dropped row
        await writer.flush()
        async with sessions() as session:
            stored = await repository.list_transitions(session)
    assert [t.uid for t in stored] == [r.uid for r in put[3:]]


async def test_health_figures_and_flush_hook(database_url: str) -> None:
    reports: list[FlushReport] = []
    async with counting_store(database_url) as (sessions, _):
        writer = WriteBehind(sessions, on_flush=reports.append)
        assert writer.lag_seconds == 0.0
        writer.put_device(device("a", 1))
        writer.put_transition(TransitionRow("a", None, "up", T0))
        writer.add_rollup("a", T0)
        await asyncio.sleep(0.05)
        assert writer.lag_seconds >= 0.05
        assert (writer.pending_devices, writer.pending_transitions, writer.pending_rollups) == (
            1,
            1,
            1,
        )
        await writer.flush()
    assert writer.lag_seconds == 0.0
    assert writer.db_ok
    assert writer.last_error is None
    assert len(reports) == 1
    report = reports[0]
    assert (report.devices, report.transitions, report.rollups, report.ok) == (1, 1, 1, True)
    assert report.seconds > 0
    assert writer.stats.last_batch_devices == 1
    assert writer.stats.flushes == 1


async def test_a_new_device_keeps_the_first_first_seen_however_often_it_is_put(
    database_url: str,
) -> None:
    # A device first seen at T0 and seen again before its row was written: the newer
    # row (which names no first_seen) replaces the pending one, but not its first_seen.
    first = DeviceRow(id="new-1", state="up", since=T0, first_seen=T0)
    later = T0 + timedelta(seconds=30)
    async with counting_store(database_url) as (sessions, _):
        writer = WriteBehind(
            sessions, flush_interval=60.0, wall_clock=lambda: later + timedelta(minutes=1)
        )
        writer.put_device(first)
        writer.put_device(device("new-1", 30))
        await writer.flush()
        # A row for a stored device never moves its first_seen.
        writer.put_device(DeviceRow(id="new-1", state="down", since=later, first_seen=later))
        await writer.flush()
        async with sessions() as session:
            stored = await repository.get_device(session, device_id="new-1")
    assert stored is not None
    assert (stored.state, stored.first_seen) == ("down", T0)


async def test_one_batch_naming_a_device_twice_keeps_its_first_seen(database_url: str) -> None:
    later = T0 + timedelta(seconds=5)
    async with counting_store(database_url) as (sessions, _):
        async with sessions() as session, session.begin():
            await repository.upsert_devices(
                session,
                rows=[
                    DeviceRow(id="twice", state="up", since=T0, first_seen=T0),
                    DeviceRow(id="twice", state="late", since=later),
                ],
                now=later,
            )
        async with sessions() as session:
            stored = await repository.get_device(session, device_id="twice")
    assert stored is not None
    assert (stored.state, stored.first_seen) == ("late", T0)
