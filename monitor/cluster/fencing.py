"""Fenced writes: what a replica writes for a partition lands only while it holds the lease.

Every write for a partition carries the lease's epoch (a :class:`Fence`: this
replica's owner name and the epoch it holds each partition at). Before writing, the
transaction locks the lease rows of the partitions it writes for::

    SELECT partition FROM partition_leases l
    JOIN unnest(:partitions, :epochs) AS f(p, e) ON l.partition = f.p AND l.epoch = f.e
    WHERE l.owner = :me AND l.expires_at > clock_timestamp()
    FOR SHARE OF l

and writes only the rows of partitions that came back; the others are rejected (and
counted). Why a row lock in the same transaction rather than only a
``WHERE EXISTS (...)`` in each statement: the check and the commit are apart in time.
Without the lock a takeover could commit between our check and our commit, and the
new owner, loading the partition, would miss rows that land after it (a transition
written by a replica that had already lost the device). ``FOR SHARE`` conflicts with
the acquiring ``UPDATE``: a takeover waits until the fenced transaction has committed
or rolled back, so every write of epoch ``e`` is visible before epoch ``e + 1``
begins, and nothing of epoch ``e`` commits after it. The lock is held for one flush,
so the cost is that a takeover may wait for one flush to finish.

``expires_at > clock_timestamp()`` makes the database judge expiry, on its own clock:
a replica frozen past its lease (SIGSTOP, GC pause, VM migration) that wakes and
flushes what it had queued is rejected even if nobody has taken the partition yet.

Alert opens and closes go through :func:`require_partition` in the transaction that
writes the alert, for the same reason.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.cluster.errors import LeaseLost, NeedsPostgres
from monitor.cluster.leases import Lease
from monitor.cluster.partitions import check_partitions, partition_of
from monitor.store import repository
from monitor.store.database import translated
from monitor.store.fence import Rejections
from monitor.store.rows import DeviceRow, RollupRow, TransitionRow

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Fence:
    """What this replica may write for: its owner name and each held partition's epoch."""

    owner: str
    partitions: int  # P, to place a device
    epochs: Mapping[int, int]  # partition -> epoch held
    # Seconds a fenced transaction may sit idle before PostgreSQL ends it (see hold()).
    idle_limit: float = 5.0

    def __post_init__(self) -> None:
        check_partitions(self.partitions)

    @classmethod
    def of(
        cls, *, owner: str, partitions: int, leases: Iterable[Lease], idle_limit: float = 5.0
    ) -> Fence:
        epochs: dict[int, int] = {}
        for lease in leases:
            if lease.owner != owner:
                raise ValueError(f"lease of partition {lease.partition} is {lease.owner}'s")
            epochs[lease.partition] = lease.epoch
        return cls(owner=owner, partitions=partitions, epochs=epochs, idle_limit=idle_limit)

    def partition(self, device_id: str) -> int:
        return partition_of(device_id, self.partitions)

    # The write-behind's fence (monitor.store.fence.WriteFence): each returns the rows
    # refused.

    async def write_devices(
        self,
        session: AsyncSession,
        *,
        rows: Sequence[DeviceRow],
        now: datetime,
        rejections: Rejections,
    ) -> int:
        written = await upsert_devices(
            session, fence=self, rows=rows, now=now, rejections=rejections
        )
        return written.rejected

    async def write_transitions(
        self, session: AsyncSession, *, rows: Sequence[TransitionRow], rejections: Rejections
    ) -> int:
        written = await insert_transitions(session, fence=self, rows=rows, rejections=rejections)
        return written.rejected

    async def write_rollups(
        self, session: AsyncSession, *, rows: Sequence[RollupRow], rejections: Rejections
    ) -> int:
        written = await add_rollups(session, fence=self, rows=rows, rejections=rejections)
        return written.rejected


@dataclass(frozen=True, slots=True)
class FencedWrite:
    """The outcome of one fenced write: rows written and rows rejected."""

    written: int
    rejected: int
    rejected_partitions: frozenset[int]


_HOLD: Final = text(
    """
    SELECT l.partition
    FROM partition_leases l
    JOIN unnest(CAST(:partitions AS integer[]), CAST(:epochs AS bigint[])) AS f(p, e)
      ON l.partition = f.p AND l.epoch = f.e
    WHERE l.owner = :owner AND l.expires_at > clock_timestamp()
    ORDER BY l.partition
    FOR SHARE OF l
    """
)


async def hold(
    session: AsyncSession, *, fence: Fence, partitions: Collection[int]
) -> frozenset[int]:
    """Lock and return those of ``partitions`` this replica still holds at its epoch.

    The locks last until the transaction ends: commit the fenced writes in it.

    A replica frozen in the middle of that transaction (SIGSTOP between two statements)
    would hold the share locks, and so block every takeover of its partitions, for as
    long as it stays frozen. ``idle_in_transaction_session_timeout``, set for this
    transaction only, has PostgreSQL end such a session after ``fence.idle_limit``
    seconds of silence, dropping its locks and its uncommitted writes.
    """
    if session.get_bind().dialect.name != "postgresql":
        raise NeedsPostgres("fenced write")
    wanted = sorted({p for p in partitions if p in fence.epochs})
    if not wanted:
        return frozenset()
    params = {
        "owner": fence.owner,
        "partitions": wanted,
        "epochs": [fence.epochs[p] for p in wanted],
    }
    with translated("check partition leases"):
        await session.execute(
            text("SELECT set_config('idle_in_transaction_session_timeout', :limit, true)"),
            {"limit": f"{max(1, round(fence.idle_limit * 1000))}ms"},
        )
        rows = await session.execute(_HOLD, params)
    return frozenset(row.partition for row in rows)


async def require_partition(session: AsyncSession, *, fence: Fence, device_id: str) -> None:
    """Raise :class:`LeaseLost` unless this replica holds ``device_id``'s partition.

    For single writes (an alert opened or closed): call it first in the transaction,
    then write; the lease cannot move until that transaction ends.
    """
    partition = fence.partition(device_id)
    if partition not in await hold(session, fence=fence, partitions=[partition]):
        raise LeaseLost(
            partition=partition, epoch=fence.epochs.get(partition, -1), owner=fence.owner
        )


async def _split(
    session: AsyncSession,
    fence: Fence,
    rows: Iterable[_T],
    device_id: str,
    rejections: Rejections | None,
) -> tuple[list[_T], FencedWrite]:
    by_partition: dict[int, list[_T]] = {}
    for row in rows:
        by_partition.setdefault(fence.partition(getattr(row, device_id)), []).append(row)
    held = await hold(session, fence=fence, partitions=by_partition)
    kept = [row for p, group in by_partition.items() if p in held for row in group]
    refused = frozenset(by_partition) - held
    rejected = 0
    for partition in refused:
        count = len(by_partition[partition])
        rejected += count
        if rejections is not None:
            rejections.add(partition, count)
    return kept, FencedWrite(written=len(kept), rejected=rejected, rejected_partitions=refused)


async def upsert_devices(
    session: AsyncSession,
    *,
    fence: Fence,
    rows: Iterable[DeviceRow],
    now: datetime,
    rejections: Rejections | None = None,
) -> FencedWrite:
    """:func:`monitor.store.repository.upsert_devices`, for held partitions only."""
    kept, outcome = await _split(session, fence, rows, "id", rejections)
    if kept:
        await repository.upsert_devices(session, rows=kept, now=now)
    return outcome


async def insert_transitions(
    session: AsyncSession,
    *,
    fence: Fence,
    rows: Iterable[TransitionRow],
    rejections: Rejections | None = None,
) -> FencedWrite:
    """:func:`monitor.store.repository.insert_transitions`, for held partitions only."""
    kept, outcome = await _split(session, fence, rows, "device_id", rejections)
    if kept:
        await repository.insert_transitions(session, rows=kept)
    return outcome


async def add_rollups(
    session: AsyncSession,
    *,
    fence: Fence,
    rows: Iterable[RollupRow],
    rejections: Rejections | None = None,
) -> FencedWrite:
    """:func:`monitor.store.repository.add_rollups`, for held partitions only."""
    kept, outcome = await _split(session, fence, rows, "device_id", rejections)
    if kept:
        await repository.add_rollups(session, rows=kept)
    return outcome
