"""The lease keeper: one replica's loop that joins, renews, rebalances and hands off.

Each :meth:`LeaseKeeper.step`, in order, each statement its own short transaction:

1. renew this replica's membership and every lease it holds (one statement);
   leases the database did not renew are dropped at once;
2. read the live members and the lease owners, and :func:`plan_for` this replica;
3. hand off the surplus: ``before_release`` (the service flushes the partitions'
   pending writes and stops acting for them), then release each;
4. acquire the partitions the plan says are free.

A step that fails (database down) changes nothing; the leases it could not renew stay
usable only until their ``valid_until`` (measured from before the last successful
renewal), after which :meth:`acting` says no and :meth:`step` forgets them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from monitor.cluster import leases as lease_store
from monitor.cluster.fencing import Fence
from monitor.cluster.keeper_stats import KeeperStats
from monitor.cluster.leases import Lease
from monitor.cluster.rebalance import plan_for
from monitor.store.errors import StoreError

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeeperTiming:
    """Lease length and how often to renew; ``margin`` is how early to stop acting."""

    ttl: float = 10.0
    renew_every: float = 2.0
    margin: float = 2.0

    def __post_init__(self) -> None:
        # Two renewals must fit before a replica stops acting, or one slow statement
        # would make every partition change hands.
        if (
            self.renew_every <= 0
            or self.margin < 0
            or 2 * self.renew_every + self.margin > self.ttl
        ):
            raise ValueError("lease timing needs 2 * renew_every + margin <= ttl")


async def _no_flush(_partitions: frozenset[int]) -> None:
    return None


def _no_lag() -> float | None:
    return None


class LeaseKeeper:
    """Holds this replica's share of the partitions; read :attr:`leases` or :meth:`fence`."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        owner: str,
        partitions: int,
        timing: KeeperTiming,
        before_release: Callable[[frozenset[int]], Awaitable[None]] = _no_flush,
        clock: Callable[[], float] = time.monotonic,
        lag: Callable[[], float | None] = _no_lag,
    ) -> None:
        self.sessions = sessions
        self.owner = owner
        self.partitions = partitions
        self.timing = timing
        self.before_release = before_release
        self.clock = clock
        # Reported with each renewal (the write-behind's lag), for the cluster view.
        self.lag = lag
        self.stats = KeeperStats()
        self.leases: dict[int, Lease] = {}
        # Being handed off: no longer acted for, still in the fence so the flush that
        # precedes the release can write what was queued for them.
        self._handing_off: set[int] = set()

    def acting(self, partition: int) -> bool:
        """Whether this replica may publish and alert for ``partition`` now."""
        lease = self.leases.get(partition)
        return (
            lease is not None
            and partition not in self._handing_off
            and lease.acting(self.clock(), margin=self.timing.margin)
        )

    def fence(self) -> Fence:
        # A frozen fenced transaction is ended in half a lease: its locks would
        # otherwise hold up the takeover of its partitions.
        return Fence.of(
            owner=self.owner,
            partitions=self.partitions,
            leases=self.leases.values(),
            idle_limit=self.timing.ttl / 2,
        )

    async def start(self) -> None:
        async with self.sessions.begin() as session:
            await lease_store.ensure_partitions(session, partitions=self.partitions)

    async def step(self) -> None:
        self.stats.steps += 1
        try:
            await self._step()
        except StoreError:
            self.stats.step_failures += 1
            raise

    async def _step(self) -> None:
        ttl = self.timing.ttl
        now = self.clock()
        held = len(self.leases)
        self.leases = {p: lease for p, lease in self.leases.items() if lease.valid_until > now}
        sent_at = self.clock()
        async with self.sessions.begin() as session:
            await lease_store.heartbeat_member(session, owner=self.owner, ttl=ttl, lag=self.lag())
            renewed = await lease_store.renew(
                session, leases=list(self.leases.values()), ttl=ttl, sent_at=sent_at
            )
        self.stats.renew.observe(self.clock() - sent_at)
        self.stats.lost += held - len(renewed)
        self.leases = renewed
        async with self.sessions() as session:
            members = await lease_store.live_members(session)
            owners = await lease_store.lease_owners(session)
        plan = plan_for(self.owner, self.partitions, members, owners)
        if plan.release:
            await self.hand_off(plan.release)
        for partition in sorted(plan.acquire):
            sent_at = self.clock()
            async with self.sessions.begin() as session:
                lease = await lease_store.acquire(
                    session, partition=partition, owner=self.owner, ttl=ttl, sent_at=sent_at
                )
            if lease is not None:
                self.leases[partition] = lease
                self.stats.acquired += 1
                if lease.taken_from is not None and lease.taken_from != self.owner:
                    self.stats.takeovers += 1

    async def hand_off(self, partitions: Collection[int]) -> None:
        """Stop acting for ``partitions``, flush (``before_release``), then release them."""
        chosen = frozenset(p for p in partitions if p in self.leases)
        if not chosen:
            return
        self._handing_off |= chosen
        try:
            await self.before_release(chosen)
            given = [self.leases.pop(p) for p in sorted(chosen) if p in self.leases]
            async with self.sessions.begin() as session:
                for lease in given:
                    if await lease_store.release(session, lease=lease):
                        self.stats.released += 1
        finally:
            # Released, or failed half-way: either way the next step sorts it out (an
            # unreleased lease that was popped simply expires).
            self._handing_off -= chosen

    async def stop(self) -> None:
        """SIGTERM: hand off everything and leave, so survivors take over at once."""
        await self.hand_off(list(self.leases))
        async with self.sessions.begin() as session:
            await lease_store.leave(session, owner=self.owner)

    async def run(self) -> None:
        """Step every ``renew_every`` seconds until cancelled; failures wait for the next."""
        while True:
            try:
                await self.step()
            except StoreError as exc:
                # Leases lapse by valid_until on their own; the next step tries again.
                _log.warning("cluster: lease step failed (%s); held %d", exc, len(self.leases))
            await asyncio.sleep(self.timing.renew_every)
