"""The cluster as the database holds it: replicas, who owns which partition, recent moves.

Read by ``clawbeat cluster status``, ``/api/cluster`` and the dashboard, so every replica
(and any machine that reaches the database) shows the same picture. Everything is
judged on the database's clock (``clock_timestamp()``), like the leases themselves:
"alive", "expires in" and "renewed ago" never depend on the asking machine's clock.

Reads only; the session comes first, nothing commits. On SQLite there is no cluster:
:func:`read_cluster` returns ``None`` (one monitor, single replica).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.store.database import translated

# A replica killed without leaving keeps its member row (expired) until it is reused
# by nobody: its name is unique to its run. Shown for this long after it expired, so
# an operator sees who went away, then dropped from the view.
GONE_SHOWN_FOR: Final = 600.0
HISTORY_SHOWN: Final = 20


@dataclass(frozen=True, slots=True)
class MemberView:
    owner: str
    """The replica's owner name: its configured name plus a suffix unique to the run."""
    name: str
    """Its configured name (``CLAWBEAT_REPLICA_NAME`` or the default)."""
    alive: bool
    joined_at: datetime
    renewed_at: datetime | None
    renewed_ago: float | None
    """Seconds since its last renewal, on the database clock: a few ``renew_every``s at
    most for a healthy replica, growing for a frozen or cut-off one."""
    expires_at: datetime
    lag_seconds: float | None
    """Its write-behind lag at that renewal: how far its partitions' rows trail it."""
    partitions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PartitionView:
    partition: int
    owner: str | None
    """The live owner; ``None`` when released, never held, or its lease has expired."""
    epoch: int
    acquired_at: datetime | None
    held_for: float | None
    """Seconds since the current owner acquired it (its lease's age)."""
    expires_in: float | None
    """Seconds until the lease runs out unless renewed."""


@dataclass(frozen=True, slots=True)
class LeaseEventView:
    partition: int
    epoch: int
    owner: str
    event: str
    """``acquire`` or ``release``."""
    at: datetime
    takeover_from: str | None
    """For an acquisition of a lease that had expired: whose it was (a dead replica)."""


@dataclass(frozen=True, slots=True)
class ClusterView:
    at: datetime
    """The database's clock when this was read."""
    partitions: int
    members: tuple[MemberView, ...]
    leases: tuple[PartitionView, ...]
    recent: tuple[LeaseEventView, ...]
    """The latest lease acquisitions and releases, newest first."""

    @property
    def live_members(self) -> tuple[MemberView, ...]:
        return tuple(m for m in self.members if m.alive)

    @property
    def unowned(self) -> tuple[int, ...]:
        return tuple(p.partition for p in self.leases if p.owner is None)


def replica_name(owner: str) -> str:
    """``monitor-a:1f2e3d4c`` -> ``monitor-a`` (see ``leases.replica_identity``)."""
    return owner.rpartition(":")[0] or owner


def _seconds(later: datetime, earlier: datetime | None) -> float | None:
    return None if earlier is None else round((later - earlier).total_seconds(), 3)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def read_cluster(
    session: AsyncSession, *, history: int = HISTORY_SHOWN
) -> ClusterView | None:
    """The cluster now, or ``None`` on SQLite (which runs one monitor only)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    with translated("read the cluster"):
        now = _aware((await session.execute(text("SELECT clock_timestamp()"))).scalar_one())
        lease_rows = (
            await session.execute(
                text(
                    "SELECT partition, owner, epoch, acquired_at, expires_at "
                    "FROM partition_leases ORDER BY partition"
                )
            )
        ).all()
        member_rows = (
            await session.execute(
                text(
                    "SELECT owner, joined_at, renewed_at, expires_at, lag_seconds "
                    "FROM cluster_members "
                    "WHERE expires_at > CAST(:now AS timestamptz) - make_interval(secs => :gone) "
                    "ORDER BY owner"
                ),
                {"now": now, "gone": GONE_SHOWN_FOR},
            )
        ).all()
        event_rows = (
            await session.execute(
                text(
                    "SELECT partition, epoch, owner, event, at, previous_owner, "
                    "previous_expires_at FROM lease_history ORDER BY id DESC LIMIT :n"
                ),
                {"n": history},
            )
        ).all()
    leases = tuple(
        PartitionView(
            partition=row.partition,
            owner=row.owner if row.expires_at is not None and row.expires_at > now else None,
            epoch=row.epoch,
            acquired_at=row.acquired_at,
            held_for=_seconds(now, row.acquired_at) if row.owner is not None else None,
            expires_in=(
                _seconds(row.expires_at, now)
                if row.owner is not None and row.expires_at is not None
                else None
            ),
        )
        for row in lease_rows
    )
    owned: dict[str, list[int]] = {}
    for lease in leases:
        if lease.owner is not None:
            owned.setdefault(lease.owner, []).append(lease.partition)
    members = tuple(
        MemberView(
            owner=row.owner,
            name=replica_name(row.owner),
            alive=row.expires_at > now,
            joined_at=row.joined_at,
            renewed_at=row.renewed_at,
            renewed_ago=_seconds(now, row.renewed_at),
            expires_at=row.expires_at,
            lag_seconds=row.lag_seconds,
            partitions=tuple(owned.get(row.owner, ())),
        )
        for row in member_rows
    )
    recent = tuple(
        LeaseEventView(
            partition=row.partition,
            epoch=row.epoch,
            owner=row.owner,
            event=row.event,
            at=row.at,
            takeover_from=(
                row.previous_owner
                if row.event == "acquire" and row.previous_owner not in (None, row.owner)
                else None
            ),
        )
        for row in event_rows
    )
    return ClusterView(
        at=now, partitions=len(leases), members=members, leases=leases, recent=recent
    )
