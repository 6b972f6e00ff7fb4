"""Repository round trips on real PostgreSQL and SQLite."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.store import repository
from monitor.store.errors import (
    ClassExists,
    ClassInUse,
    ClassNotFound,
    DataRejected,
    DeviceNotFound,
    StoreUnavailable,
)
from monitor.store.rows import ClassSpec, DeviceRow, RollupRow, TransitionRow
from tests.harness.db_fixtures import open_store
from tests.harness.store_queries import list_rollups

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


def device(device_id: str, state: str = "up", **fields: object) -> DeviceRow:
    values: dict[str, object] = {
        "since": T0,
        "session": "s1",
        "last_seq": 1,
        "last_seen": T0,
        "announced_interval": 10.0,
    }
    values.update(fields)
    return DeviceRow(id=device_id, state=state, **values)  # type: ignore[arg-type]


async def upsert(sessions: Sessions, *rows: DeviceRow, now: datetime = T0) -> None:
    async with sessions() as session, session.begin():
        await repository.upsert_devices(session, rows=rows, now=now)


async def test_devices_round_trip_with_utc_times(database_url: str) -> None:
    # Stored from another zone, read back as the same instant in UTC.
    local = datetime(2026, 3, 1, 16, 0, tzinfo=timezone(timedelta(hours=2)))
    async with open_store(database_url) as sessions:
        await upsert(
            sessions,
            device("a", fw="1.0", latest_metrics={"temp": 21.5}, last_seq=2**63 - 1),
            device("b", state="down", reason="missed", since=local),
        )
        async with sessions() as session:
            snapshots = {s.id: s for s in await repository.load_devices(session)}
            stored = await repository.get_device(session, device_id="a")
    assert set(snapshots) == {"a", "b"}
    a, b = snapshots["a"], snapshots["b"]
    assert a.state == "up"
    assert a.since == T0
    assert a.since.tzinfo is not None
    assert a.since.utcoffset() == timedelta(0)
    assert a.last_seq == 2**63 - 1  # the protocol's largest seq fits
    assert a.class_name == "default"
    assert a.in_maintenance is False
    assert a.interval_override is None
    assert b.state == "down"
    assert b.reason == "missed"
    assert b.since == local
    assert b.since.utcoffset() == timedelta(0)
    assert stored is not None
    assert stored.fw == "1.0"
    assert stored.latest_metrics == {"temp": 21.5}
    assert stored.tags == []
    assert stored.first_seen == T0


async def test_upsert_keeps_the_last_row_per_device_and_operator_columns(
    database_url: str,
) -> None:
    later = T0 + timedelta(minutes=5)
    async with open_store(database_url) as sessions:
        await upsert(sessions, device("a", fw="1.0", latest_metrics={"v": 1}))
        async with sessions() as session, session.begin():
            await repository.set_interval_override(session, device_id="a", interval=30.0, now=T0)
            await repository.set_maintenance(session, device_id="a", in_maintenance=True, now=T0)
            await repository.set_tags(session, device_id="a", tags=["roof", "north"], now=T0)
        # Two rows for one device in one batch: the last wins. fw and metrics left as
        # None keep what is stored (a presence message carries neither).
        async with sessions() as session, session.begin():
            written = await repository.upsert_devices(
                session,
                rows=[device("a", state="late", last_seq=5), device("a", state="down", last_seq=6)],
                now=later,
            )
        assert written == 1
        async with sessions() as session:
            stored = await repository.get_device(session, device_id="a")
    assert stored is not None
    assert (stored.state, stored.last_seq) == ("down", 6)
    assert stored.fw == "1.0"
    assert stored.latest_metrics == {"v": 1}
    assert stored.interval_override == 30.0
    assert stored.in_maintenance is True
    assert stored.tags == ["roof", "north"]
    assert stored.first_seen == T0
    assert stored.updated_at == later


async def test_non_finite_metrics_are_stored_as_null(database_url: str) -> None:
    metrics = {"nan": math.nan, "inf": [math.inf, 1.5], "ok": 2}
    async with open_store(database_url) as sessions:
        await upsert(sessions, device("a", latest_metrics=metrics))
        async with sessions() as session:
            stored = await repository.get_device(session, device_id="a")
    assert stored is not None
    assert stored.latest_metrics == {"nan": None, "inf": [None, 1.5], "ok": 2}


async def test_naive_datetimes_are_refused(database_url: str) -> None:
    async with open_store(database_url) as sessions, sessions() as session:
        with pytest.raises(DataRejected):
            await repository.upsert_devices(
                session, rows=[device("a", since=datetime(2026, 3, 1))], now=T0
            )


async def test_list_devices_filters_and_counts(database_url: str) -> None:
    async with open_store(database_url) as sessions:
        async with sessions() as session, session.begin():
            await repository.create_class(session, spec=ClassSpec(name="meters", interval=60.0))
        await upsert(
            sessions, device("a"), device("b", state="down"), device("c", state="down"), device("d")
        )
        async with sessions() as session, session.begin():
            await repository.set_device_class(session, device_id="c", class_name="meters", now=T0)
        async with sessions() as session:
            down = await repository.list_devices(session, state="down")
            meters = await repository.list_devices(session, class_name="meters")
            page = await repository.list_devices(session, limit=2, offset=1)
            counts = await repository.count_devices_by_state(session)
    assert [d.id for d in down] == ["b", "c"]
    assert [d.id for d in meters] == ["c"]
    assert [d.id for d in page] == ["b", "c"]
    assert counts == {"up": 2, "down": 2}


async def test_operator_writes_report_unknown_devices_and_classes(database_url: str) -> None:
    async with open_store(database_url) as sessions:
        await upsert(sessions, device("a"))
        async with sessions() as session, session.begin():
            with pytest.raises(DeviceNotFound):
                await repository.set_interval_override(
                    session, device_id="ghost", interval=5.0, now=T0
                )
            with pytest.raises(ClassNotFound):
                await repository.set_device_class(session, device_id="a", class_name="nope", now=T0)
            # The transaction is still usable after both refusals (on PostgreSQL a
            # failed statement would have aborted it).
            await repository.set_interval_override(session, device_id="a", interval=5.0, now=T0)
        async with sessions() as session:
            stored = await repository.get_device(session, device_id="a")
    assert stored is not None
    assert stored.interval_override == 5.0


async def test_transitions_are_listed_by_device_and_time_and_deduplicated(
    database_url: str,
) -> None:
    rows = [
        TransitionRow("a", None, "up", T0, reason="first-heartbeat", session="s1"),
        TransitionRow("b", None, "up", T0 + timedelta(seconds=1)),
        TransitionRow("a", "up", "late", T0 + timedelta(seconds=30), reason="late"),
        TransitionRow("a", "late", "down", T0 + timedelta(seconds=30), reason="missed"),
        TransitionRow("a", "down", "up", T0 + timedelta(minutes=2)),
    ]
    async with open_store(database_url) as sessions:
        async with sessions() as session, session.begin():
            await repository.insert_transitions(session, rows=rows)
        # A retried batch (same uids) inserts nothing twice.
        async with sessions() as session, session.begin():
            await repository.insert_transitions(session, rows=rows[2:4])
        async with sessions() as session:
            all_a = await repository.list_transitions(session, device_id="a")
            window = await repository.list_transitions(
                session,
                device_id="a",
                since=T0 + timedelta(seconds=30),
                until=T0 + timedelta(minutes=2),
            )
            newest = await repository.list_transitions(session, limit=1, newest_first=True)
            everything = await repository.list_transitions(session)
    assert [(t.old_state, t.new_state) for t in all_a] == [
        (None, "up"),
        ("up", "late"),
        ("late", "down"),
        ("down", "up"),
    ]
    assert all_a[0].reason == "first-heartbeat"
    assert all_a[0].session == "s1"
    assert all_a[0].at == T0
    assert [t.new_state for t in window] == ["late", "down"]  # same time: insertion order
    assert [t.uid for t in newest] == [rows[4].uid]
    assert len(everything) == len(rows)
    assert {t.uid for t in everything} == {r.uid for r in rows}


async def test_rollups_add_up_across_batches(database_url: str) -> None:
    minute = T0.replace(second=0, microsecond=0)
    async with open_store(database_url) as sessions:
        async with sessions() as session, session.begin():
            await repository.add_rollups(
                session,
                rows=[
                    RollupRow(
                        "a",
                        minute,
                        count=3,
                        latency_count=2,
                        latency_sum_ms=30.0,
                        latency_max_ms=20.0,
                    ),
                    # Same key twice in one batch is merged, not a conflict error.
                    RollupRow("a", minute, count=1, missed=1),
                    RollupRow("b", minute, count=1),
                ],
            )
        async with sessions() as session, session.begin():
            await repository.add_rollups(
                session,
                rows=[
                    RollupRow(
                        "a",
                        minute,
                        count=2,
                        latency_count=1,
                        latency_sum_ms=50.0,
                        latency_max_ms=50.0,
                        jitter_count=1,
                        jitter_sum_ms=4.0,
                        jitter_max_ms=4.0,
                    ),
                    RollupRow("a", minute + timedelta(minutes=1), count=1),
                ],
            )
        async with sessions() as session:
            rows = await list_rollups(
                session, device_id="a", since=minute, until=minute + timedelta(hours=1)
            )
    assert [r.minute for r in rows] == [minute, minute + timedelta(minutes=1)]
    first = rows[0]
    assert (first.count, first.missed) == (6, 1)
    assert (first.latency_count, first.latency_sum_ms, first.latency_max_ms) == (3, 80.0, 50.0)
    # max() with a NULL on one side keeps the other side on both dialects.
    assert (first.jitter_count, first.jitter_sum_ms, first.jitter_max_ms) == (1, 4.0, 4.0)
    assert rows[1].count == 1
    assert rows[1].latency_max_ms is None


async def test_device_class_crud(database_url: str) -> None:
    async with open_store(database_url) as sessions:
        async with sessions() as session, session.begin():
            created = await repository.create_class(
                session,
                spec=ClassSpec(
                    name="meters", interval=300.0, grace=30.0, missed_limit=2, description="gas"
                ),
            )
            assert (created.interval, created.grace, created.missed_limit) == (300.0, 30.0, 2)
            with pytest.raises(ClassExists):
                await repository.create_class(session, spec=ClassSpec(name="meters"))
            # Still usable after the refusal.
            updated = await repository.update_class(
                session, spec=ClassSpec(name="meters", interval=120.0, lost_after=None)
            )
            assert (updated.interval, updated.lost_after, updated.description) == (120.0, None, "")
            with pytest.raises(ClassNotFound):
                await repository.update_class(session, spec=ClassSpec(name="ghost"))
        await upsert(sessions, device("a"))
        async with sessions() as session, session.begin():
            await repository.set_device_class(session, device_id="a", class_name="meters", now=T0)
            with pytest.raises(ClassInUse) as in_use:
                await repository.delete_class(session, name="meters")
            assert in_use.value.devices == 1
            with pytest.raises(ClassInUse):
                await repository.delete_class(session, name="default")
            with pytest.raises(ClassNotFound):
                await repository.delete_class(session, name="ghost")
            await repository.set_device_class(session, device_id="a", class_name="default", now=T0)
            await repository.delete_class(session, name="meters")
        async with sessions() as session:
            names = [c.name for c in await repository.list_classes(session)]
            assert await repository.get_class(session, name="meters") is None
    assert names == ["default"]


async def test_class_constraints_reject_nonsense(database_url: str) -> None:
    async with open_store(database_url) as sessions, sessions() as session:
        with pytest.raises(DataRejected):
            await repository.create_class(session, spec=ClassSpec(name="bad", missed_limit=0))


async def test_delete_device_and_prune_history(database_url: str) -> None:
    old, new = T0 - timedelta(days=40), T0
    async with open_store(database_url) as sessions:
        await upsert(sessions, device("a"), device("b"))
        async with sessions() as session, session.begin():
            await repository.insert_transitions(
                session,
                rows=[
                    TransitionRow("a", None, "up", old),
                    TransitionRow("b", None, "up", old),
                    TransitionRow("b", "up", "down", new),
                ],
            )
            await repository.add_rollups(
                session, rows=[RollupRow("b", old.replace(second=0, microsecond=0), count=1)]
            )
        async with sessions() as session, session.begin():
            await repository.delete_device(session, device_id="a")
            with pytest.raises(DeviceNotFound):
                await repository.delete_device(session, device_id="a")
            removed = await repository.prune_history(
                session, transitions_before=T0 - timedelta(days=30), rollups_before=T0
            )
        async with sessions() as session:
            left = await repository.list_transitions(session)
            ids = [s.id for s in await repository.load_devices(session)]
    assert removed == (1, 1)
    assert ids == ["b"]
    assert [(t.device_id, t.new_state) for t in left] == [("b", "down")]


async def test_monitor_meta_round_trip(database_url: str) -> None:
    async with open_store(database_url) as sessions:
        async with sessions() as session:
            assert await repository.get_meta(session, key="config_version") is None
        for value in ("1", "2"):
            async with sessions() as session, session.begin():
                await repository.set_meta(session, key="config_version", value=value, now=T0)
        async with sessions() as session:
            assert await repository.get_meta(session, key="config_version") == "2"


async def test_unreachable_database_is_a_store_error() -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    async with (
        open_store("postgresql://nobody@127.0.0.1:1/none") as sessions,
        sessions() as session,
    ):
        with pytest.raises(StoreUnavailable):
            await repository.load_devices(session)


def test_uids_are_unique_per_transition() -> None:
    a = TransitionRow("a", None, "up", T0)
    b = TransitionRow("a", None, "up", T0)
    assert a.uid != b.uid
    assert isinstance(a.uid, uuid.UUID)


async def test_forgotten_devices_stay_forgotten_until_revived(database_url: str) -> None:
    async with open_store(database_url) as sessions:
        await upsert(sessions, device("gone"), device("kept"))
        async with sessions() as session, session.begin():
            await repository.delete_device(session, device_id="gone")
            await repository.add_forgotten(session, device_id="gone", now=T0)
            await repository.add_forgotten(session, device_id="gone", now=T0)  # idempotent
        # A flush racing the deletion writes the device back; the purge removes it.
        await upsert(sessions, device("gone"))
        async with sessions() as session, session.begin():
            await repository.insert_transitions(
                session, rows=[TransitionRow("gone", "up", "down", T0)]
            )
            assert await repository.forgotten_ids(session) == {"gone"}
            assert await repository.purge_forgotten(session, device_ids={"gone", "kept"}) == 1
        async with sessions() as session, session.begin():
            assert [s.id for s in await repository.load_devices(session)] == ["kept"]
            assert await repository.list_transitions(session, device_id="gone") == []
            await repository.remove_forgotten(session, device_ids={"gone"})
        async with sessions() as session:
            assert await repository.forgotten_ids(session) == set()
