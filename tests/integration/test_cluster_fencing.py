"""Fenced writes on real PostgreSQL: a replica that lost a partition's lease writes nothing.

Device rows, transitions and rollups go through ``monitor.cluster.fencing``; alert
opens and closes call ``require_partition`` first. The database decides, under a lock
on the lease row, on its own clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.cluster import fencing, leases
from monitor.cluster.errors import LeaseLost
from monitor.cluster.fencing import Fence
from monitor.cluster.partitions import partition_of
from monitor.store.fence import Rejections
from monitor.store.rows import DeviceRow, RollupRow, TransitionRow
from tests.harness.api import wait_for
from tests.harness.db_fixtures import database_name, open_store
from tests.harness.postgres import PostgresServer

pytestmark = pytest.mark.anyio

PARTITIONS = 8
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, pg_server: PostgresServer) -> Iterator[str]:
    template: str = request.getfixturevalue("_pg_head_template")
    name = database_name(request.node.nodeid)
    yield pg_server.create_database(name, template=template)
    pg_server.drop_database(name)


@pytest.fixture
async def sessions(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with open_store(pg_url) as factory:
        async with factory.begin() as session:
            await leases.ensure_partitions(session, partitions=PARTITIONS)
        yield factory


async def take(
    sessions: async_sessionmaker[AsyncSession], owner: str, partition: int, ttl: float = 30.0
) -> leases.Lease:
    async with sessions.begin() as session:
        lease = await leases.acquire(
            session, partition=partition, owner=owner, ttl=ttl, sent_at=time.monotonic()
        )
    assert lease is not None
    return lease


def devices_in(partition: int, count: int) -> list[str]:
    found: list[str] = []
    n = 0
    while len(found) < count:
        if partition_of(f"dev-{n}", PARTITIONS) == partition:
            found.append(f"dev-{n}")
        n += 1
    return found


def device_row(device_id: str, state: str = "online") -> DeviceRow:
    return DeviceRow(id=device_id, state=state, since=NOW, last_seen=NOW)


async def stored_ids(sessions: async_sessionmaker[AsyncSession], table: str) -> set[str]:
    column = "id" if table == "devices" else "device_id"
    async with sessions() as session:
        return {row[0] for row in await session.execute(text(f"SELECT {column} FROM {table}"))}


async def test_only_the_held_partitions_rows_are_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = [await take(sessions, "a:1", 1), await take(sessions, "a:1", 2)]
    await take(sessions, "b:1", 3)
    fence = Fence.of(owner="a:1", partitions=PARTITIONS, leases=mine)
    held_ids = devices_in(1, 3) + devices_in(2, 2)
    foreign = devices_in(3, 4)
    rejections = Rejections()
    async with sessions.begin() as session:
        outcome = await fencing.upsert_devices(
            session,
            fence=fence,
            rows=[device_row(d) for d in held_ids + foreign],
            now=NOW,
            rejections=rejections,
        )
        transitions = await fencing.insert_transitions(
            session,
            fence=fence,
            rows=[TransitionRow(d, None, "online", NOW) for d in held_ids + foreign],
            rejections=rejections,
        )
        rollups = await fencing.add_rollups(
            session,
            fence=fence,
            rows=[RollupRow(d, NOW, count=1) for d in held_ids + foreign],
            rejections=rejections,
        )
    assert (outcome.written, outcome.rejected, outcome.rejected_partitions) == (
        5,
        4,
        frozenset({3}),
    )
    assert (transitions.written, rollups.written) == (5, 5)
    assert rejections.rows == 12
    assert rejections.by_partition == {3: 12}
    for table in ("devices", "transitions", "heartbeat_rollups"):
        assert await stored_ids(sessions, table) == set(held_ids)


async def test_a_replica_whose_lease_expired_writes_nothing_and_is_counted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ttl = 0.5
    old = await take(sessions, "a:1", 0, ttl=ttl)
    stale = Fence.of(owner="a:1", partitions=PARTITIONS, leases=[old])
    ids = devices_in(0, 3)

    async def expired() -> bool:
        async with sessions() as session:
            return (await leases.lease_owners(session))[0] is None

    # Frozen past its lease; nobody has taken the partition yet. The database judges
    # expiry on its own clock, so the wake-up flush is refused anyway.
    await wait_for(expired, timeout=10 + ttl, what="the lease to expire on the database clock")
    rejections = Rejections()
    async with sessions.begin() as session:
        outcome = await fencing.insert_transitions(
            session,
            fence=stale,
            rows=[TransitionRow(d, "online", "offline", NOW) for d in ids],
            rejections=rejections,
        )
    assert (outcome.written, outcome.rejected) == (0, 3)

    # Taken over (epoch 2): the two replicas write the same devices at once.
    new = await take(sessions, "b:1", 0)
    assert new.epoch == old.epoch + 1
    current = Fence.of(owner="b:1", partitions=PARTITIONS, leases=[new])

    async def write(fence: Fence, state: str) -> fencing.FencedWrite:
        async with sessions.begin() as session:
            return await fencing.upsert_devices(
                session,
                fence=fence,
                rows=[device_row(d, state) for d in ids],
                now=NOW,
                rejections=rejections,
            )

    outcomes = await asyncio.gather(write(stale, "offline"), write(current, "online"))
    assert [o.written for o in outcomes] == [0, 3]
    assert rejections.rows == 6
    async with sessions() as session:
        states = {r[0] for r in await session.execute(text("SELECT state FROM devices"))}
    assert states == {"online"}
    assert await stored_ids(sessions, "transitions") == set()

    # An alert open or close is fenced the same way.
    async with sessions.begin() as session:
        with pytest.raises(LeaseLost, match="a:1 no longer holds partition 0 at epoch 1"):
            await fencing.require_partition(session, fence=stale, device_id=ids[0])
        await fencing.require_partition(session, fence=current, device_id=ids[0])


async def test_a_takeover_waits_for_the_fenced_transaction_to_commit(
    pg_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ttl = 1.0
    old = await take(sessions, "a:1", 5, ttl=ttl)
    fence = Fence.of(owner="a:1", partitions=PARTITIONS, leases=[old])
    ids = devices_in(5, 2)
    async with open_store(pg_url) as other, sessions() as writer:
        await writer.begin()
        outcome = await fencing.upsert_devices(
            writer, fence=fence, rows=[device_row(d) for d in ids], now=NOW
        )
        assert outcome.written == 2

        async def lease_expired() -> bool:
            async with other() as session:
                return (await leases.lease_owners(session))[5] is None

        await wait_for(lease_expired, timeout=10 + ttl, what="the lease to expire")
        takeover = asyncio.create_task(take(other, "b:1", 5))

        async def takeover_waits_on_the_lock() -> bool:
            async with other() as session:
                waiting = await session.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                )
                return bool(waiting.scalar())

        await wait_for(takeover_waits_on_the_lock, timeout=10, what="the takeover to block")
        assert not takeover.done()
        await writer.commit()
        new = await asyncio.wait_for(takeover, timeout=10)
    assert new.epoch == 2
    # What the old owner committed is there before the new owner loads the partition.
    assert await stored_ids(sessions, "devices") == set(ids)
