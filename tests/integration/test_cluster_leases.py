"""Partition leases on real PostgreSQL: compare-and-set, epochs that only grow, history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.cluster import leases
from monitor.cluster.errors import NeedsPostgres, PartitionCountMismatch
from monitor.store import migrate
from tests.harness.api import wait_for
from tests.harness.db_fixtures import database_name, open_store
from tests.harness.postgres import PostgresServer

pytestmark = pytest.mark.anyio

PARTITIONS = 8


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, pg_server: PostgresServer) -> Iterator[str]:
    """A fresh PostgreSQL database at head (cluster mode has no SQLite variant)."""
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


async def acquire(
    sessions: async_sessionmaker[AsyncSession], owner: str, partition: int, ttl: float = 30.0
) -> leases.Lease | None:
    async with sessions.begin() as session:
        return await leases.acquire(
            session, partition=partition, owner=owner, ttl=ttl, sent_at=time.monotonic()
        )


async def history(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[object, ...]]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT partition, epoch, owner, event, previous_owner FROM lease_history "
                "ORDER BY id"
            )
        )
        return [tuple(row) for row in rows]


async def test_acquire_renew_release_and_the_epoch_only_grows(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    a = await acquire(sessions, "a:1", 3)
    assert a is not None
    assert a.epoch == 1
    assert await acquire(sessions, "b:1", 3) is None  # held: the CAS does not match

    async with sessions.begin() as session:
        renewed = await leases.renew(session, leases=[a], ttl=30, sent_at=time.monotonic())
    assert renewed[3].epoch == 1
    assert renewed[3].expires_at > a.expires_at

    async with sessions.begin() as session:
        assert await leases.release(session, lease=a)
        assert not await leases.release(session, lease=a)  # already released
    b = await acquire(sessions, "b:1", 3)
    assert b is not None
    assert b.epoch == 2
    async with sessions.begin() as session:
        assert await leases.renew(session, leases=[a], ttl=30, sent_at=time.monotonic()) == {}
        owners = await leases.lease_owners(session)
    assert owners == {p: ("b:1" if p == 3 else None) for p in range(PARTITIONS)}

    assert await history(sessions) == [
        (3, 1, "a:1", "acquire", None),
        (3, 1, "a:1", "release", None),
        (3, 2, "b:1", "acquire", None),
    ]


async def test_two_replicas_racing_for_every_partition_get_one_owner_each(
    pg_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Two engines (two replicas' pools), each sending all its acquisitions at once.
    async with open_store(pg_url) as other:
        attempts = [
            acquire(factory, owner, partition)
            for partition in range(PARTITIONS)
            for _ in range(3)
            for factory, owner in ((sessions, "a:1"), (other, "b:1"))
        ]
        won = [lease for lease in await asyncio.gather(*attempts) if lease is not None]
    assert sorted(lease.partition for lease in won) == list(range(PARTITIONS))
    assert {lease.epoch for lease in won} == {1}
    async with sessions() as session:
        owners = await leases.lease_owners(session)
    assert owners == {lease.partition: lease.owner for lease in won}


async def test_an_expired_lease_cannot_be_renewed_and_is_taken_with_a_new_epoch(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ttl = 0.5
    a = await acquire(sessions, "a:1", 0, ttl=ttl)
    assert a is not None

    async def expired() -> bool:
        async with sessions() as session:
            return (await leases.lease_owners(session))[0] is None

    await wait_for(expired, timeout=10 + ttl, what="the lease to expire on the database clock")
    assert not a.acting(time.monotonic(), margin=0)  # the replica's own view ended first
    async with sessions.begin() as session:
        assert await leases.renew(session, leases=[a], ttl=ttl, sent_at=time.monotonic()) == {}
    b = await acquire(sessions, "b:1", 0)
    assert b is not None
    assert b.epoch == 2
    async with sessions() as session:
        row = (
            await session.execute(
                text(
                    "SELECT previous_owner, previous_expires_at <= at FROM lease_history "
                    "WHERE epoch = 2"
                )
            )
        ).one()
    assert tuple(row) == ("a:1", True)


async def test_members_join_and_leave(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        await leases.heartbeat_member(session, owner="a:1", ttl=30)
        await leases.heartbeat_member(session, owner="b:1", ttl=30)
        await leases.heartbeat_member(session, owner="a:1", ttl=30)
    async with sessions.begin() as session:
        assert await leases.live_members(session) == ["a:1", "b:1"]
        await leases.leave(session, owner="a:1")
    async with sessions() as session:
        assert await leases.live_members(session) == ["b:1"]


async def test_a_replica_with_another_partition_count_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        with pytest.raises(PartitionCountMismatch, match="CLAWBEAT_PARTITIONS is 16 but"):
            await leases.ensure_partitions(session, partitions=16)


async def test_leases_refuse_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    await migrate.upgrade(url)
    async with open_store(url) as factory, factory() as session:
        with pytest.raises(NeedsPostgres, match="cluster mode needs PostgreSQL"):
            await leases.ensure_partitions(session, partitions=8)


def test_replica_identity_is_unique_per_run() -> None:
    first, second = leases.replica_identity("mon-a"), leases.replica_identity("mon-a")
    assert first != second
    assert first.startswith("mon-a:")
    with pytest.raises(ValueError, match="replica name"):
        leases.replica_identity("has space")
