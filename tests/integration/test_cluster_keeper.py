"""Lease keepers on real PostgreSQL: sharing, handoff, and a database restart underneath.

Two or three keepers run in this event loop; a sampler reads every keeper's view of
what it may act for, between their steps, so a sample is one instant for all of them.
At no sample may two keepers act for one partition, and the lease history must show
every acquisition found the previous lease released or expired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.cluster import fencing
from monitor.cluster.errors import LeaseLost
from monitor.cluster.keeper import KeeperTiming, LeaseKeeper
from monitor.cluster.leases import replica_identity
from monitor.store import migrate
from tests.harness.api import wait_for
from tests.harness.db_fixtures import database_name, open_store
from tests.harness.postgres import PostgresServer, RestartableServer

pytestmark = pytest.mark.anyio

PARTITIONS = 12
TIMING = KeeperTiming(ttl=2.0, renew_every=0.3, margin=0.5)
# Long leases, so a takeover well inside one proves it came by handoff, not expiry.
LONG = KeeperTiming(ttl=8.0, renew_every=0.3, margin=0.5)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, pg_server: PostgresServer) -> Iterator[str]:
    template: str = request.getfixturevalue("_pg_head_template")
    name = database_name(request.node.nodeid)
    yield pg_server.create_database(name, template=template)
    pg_server.drop_database(name)


class Cluster:
    """Keepers running, and a sampler checking that no partition has two actors."""

    def __init__(self, timing: KeeperTiming) -> None:
        self.timing = timing
        self.keepers: list[LeaseKeeper] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.double_owned: list[tuple[int, list[str]]] = []
        self.samples = 0

    async def add(self, sessions: async_sessionmaker[AsyncSession], name: str) -> LeaseKeeper:
        keeper = LeaseKeeper(
            sessions, owner=replica_identity(name), partitions=PARTITIONS, timing=self.timing
        )
        await keeper.start()
        self.keepers.append(keeper)
        self.tasks.append(asyncio.create_task(keeper.run()))
        return keeper

    async def sample(self) -> None:
        while True:
            self.samples += 1
            for partition in range(PARTITIONS):
                actors = [k.owner for k in self.keepers if k.acting(partition)]
                if len(actors) > 1:
                    self.double_owned.append((partition, actors))
            await asyncio.sleep(0.01)

    def balanced(self, keepers: list[LeaseKeeper]) -> bool:
        held = [set(k.leases) for k in keepers]
        every = set().union(*held)
        sizes = [len(h) for h in held]
        return every == set(range(PARTITIONS)) and max(sizes) - min(sizes) <= 1

    async def stop(self, keeper: LeaseKeeper) -> None:
        index = self.keepers.index(keeper)
        task = self.tasks[index]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await keeper.stop()


@contextlib.asynccontextmanager
async def cluster(timing: KeeperTiming = TIMING) -> AsyncIterator[Cluster]:
    running = Cluster(timing)
    sampler = asyncio.create_task(running.sample())
    try:
        yield running
    finally:
        for task in [*running.tasks, sampler]:
            task.cancel()
        await asyncio.gather(*running.tasks, sampler, return_exceptions=True)


async def history_violations(
    sessions: async_sessionmaker[AsyncSession],
) -> list[tuple[object, ...]]:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT partition, epoch, owner, previous_owner, previous_expires_at, at "
                "FROM lease_history WHERE event = 'acquire' AND previous_owner IS NOT NULL "
                "AND NOT previous_expires_at <= at"
            )
        )
        return [tuple(r) for r in rows]


async def epochs_grow(sessions: async_sessionmaker[AsyncSession]) -> bool:
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT count(*) FROM (SELECT partition, epoch, "
                "lag(epoch) OVER (PARTITION BY partition ORDER BY id) AS before "
                "FROM lease_history WHERE event = 'acquire') h WHERE epoch <= before"
            )
        )
        return rows.scalar() == 0


async def test_replicas_share_hand_off_on_join_and_take_over_on_sigterm(pg_url: str) -> None:
    async with open_store(pg_url) as sessions, cluster(LONG) as running:
        a = await running.add(sessions, "mon-a")
        await wait_for(lambda: running.balanced([a]), timeout=10, what="a owns everything")
        b = await running.add(sessions, "mon-b")
        c = await running.add(sessions, "mon-c")
        await wait_for(
            lambda: running.balanced([a, b, c]), timeout=20, what="three-way spread by handoff"
        )
        assert sorted(len(k.leases) for k in (a, b, c)) == [4, 4, 4]

        await running.stop(c)  # SIGTERM: hand off and leave; no waiting for expiry
        await wait_for(
            lambda: running.balanced([a, b]), timeout=LONG.ttl - 2, what="takeover by handoff"
        )

        assert running.samples > 10
        assert running.double_owned == []
        assert await history_violations(sessions) == []
        assert await epochs_grow(sessions)


async def test_postgres_restart_never_gives_a_partition_two_owners(
    pg_cluster: RestartableServer,
) -> None:
    url = pg_cluster.create_database("cluster_restart")
    await migrate.upgrade(url)
    async with open_store(url) as sessions, cluster() as running:
        a = await running.add(sessions, "mon-a")
        b = await running.add(sessions, "mon-b")
        await wait_for(lambda: running.balanced([a, b]), timeout=20, what="two-way spread")
        before = b.fence()

        pg_cluster.stop(mode="immediate")  # a crash, under running keepers
        # Down for longer than a lease: every replica must go quiet on its own.
        await wait_for(
            lambda: not any(k.acting(p) for k in (a, b) for p in range(PARTITIONS)),
            timeout=TIMING.ttl + 5,
            what="both replicas to stop acting while the database is down",
        )
        await asyncio.sleep(TIMING.ttl)
        pg_cluster.start()
        await wait_for(lambda: running.balanced([a, b]), timeout=30, what="leases re-established")

        # b's writes under its pre-restart epochs are refused now.
        partition = next(iter(before.epochs))
        device = next(
            f"dev-{n}" for n in range(10_000) if before.partition(f"dev-{n}") == partition
        )
        async with sessions.begin() as session:
            with pytest.raises(LeaseLost):
                await fencing.require_partition(session, fence=before, device_id=device)

        assert running.double_owned == []
        assert await history_violations(sessions) == []
        assert await epochs_grow(sessions)
