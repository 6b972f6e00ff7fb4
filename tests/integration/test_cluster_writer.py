"""The write-behind writer in cluster mode: each flush lands only for held partitions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.cluster import leases
from monitor.cluster.fencing import Fence
from monitor.cluster.keeper import KeeperTiming, LeaseKeeper
from monitor.cluster.partitions import partition_of
from monitor.store.rows import DeviceRow, TransitionRow
from monitor.store.writer import WriteBehind
from tests.harness.db_fixtures import database_name, open_store
from tests.harness.postgres import PostgresServer

pytestmark = pytest.mark.anyio

PARTITIONS = 8
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
IDS = [f"plug-{n:02d}" for n in range(40)]


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


async def stored(sessions: async_sessionmaker[AsyncSession], sql: str) -> set[str]:
    async with sessions() as session:
        return {row[0] for row in await session.execute(text(sql))}


async def test_a_flush_writes_held_partitions_and_counts_the_rest(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    held: list[leases.Lease] = []
    for partition in range(PARTITIONS // 2):
        async with sessions.begin() as session:
            lease = await leases.acquire(
                session, partition=partition, owner="a:1", ttl=30, sent_at=time.monotonic()
            )
        assert lease is not None
        held.append(lease)
    current = Fence.of(owner="a:1", partitions=PARTITIONS, leases=held)
    writer = WriteBehind(sessions, flush_interval=0.05, fence=lambda: current)
    task = asyncio.create_task(writer.run())
    try:
        for device_id in IDS:
            writer.put_device(DeviceRow(id=device_id, state="online", since=NOW, last_seen=NOW))
            writer.put_transition(TransitionRow(device_id, None, "online", NOW))
        await writer.flush()
        mine = {d for d in IDS if partition_of(d, PARTITIONS) < PARTITIONS // 2}
        assert 0 < len(mine) < len(IDS)
        assert await stored(sessions, "SELECT id FROM devices") == mine
        assert await stored(sessions, "SELECT device_id FROM transitions") == mine
        assert writer.stats.rows_fenced == 2 * (len(IDS) - len(mine))

        # The leases are lost (released under it); what it still flushes lands nowhere.
        async with sessions.begin() as session:
            for lease in held:
                await leases.release(session, lease=lease)
        fenced_before = writer.stats.rows_fenced
        for device_id in IDS:
            writer.put_transition(TransitionRow(device_id, "online", "offline", NOW))
        await writer.flush()
        assert writer.stats.rows_fenced == fenced_before + len(IDS)
        assert await stored(sessions, "SELECT new_state FROM transitions") == {"online"}
        assert writer.pending_transitions == 0  # dropped, not retried
    finally:
        await writer.close()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_handoff_flushes_what_was_queued_for_the_partition_before_releasing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    timing = KeeperTiming(ttl=30, renew_every=5, margin=1)
    keeper = LeaseKeeper(
        sessions, owner=leases.replica_identity("mon-a"), partitions=PARTITIONS, timing=timing
    )
    # A long flush interval: only the handoff's own flush can write these rows in time.
    writer = WriteBehind(sessions, flush_interval=60, fence=keeper.fence)
    keeper.before_release = lambda _partitions: writer.flush()
    await keeper.start()
    await keeper.step()
    assert set(keeper.leases) == set(range(PARTITIONS))
    task = asyncio.create_task(writer.run())
    try:
        given = partition_of(IDS[0], PARTITIONS)
        queued = [d for d in IDS if partition_of(d, PARTITIONS) == given]
        for device_id in queued:
            writer.put_device(DeviceRow(id=device_id, state="offline", since=NOW, last_seen=NOW))
        await keeper.hand_off([given])
        assert not keeper.acting(given)
        assert await stored(sessions, "SELECT id FROM devices") == set(queued)
        assert writer.stats.rows_fenced == 0
        async with sessions() as session:
            assert (await leases.lease_owners(session))[given] is None
    finally:
        await writer.close()
        await asyncio.gather(task, return_exceptions=True)
