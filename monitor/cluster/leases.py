"""Partition leases in PostgreSQL: acquire, renew and release by compare-and-set.

A lease is one row of ``partition_leases``: owner, epoch, expiry. Every change is one
statement whose WHERE clause is the condition it depends on, evaluated by PostgreSQL
under the row's lock, on PostgreSQL's clock (``clock_timestamp()``):

* **acquire**: only if the partition is released (owner NULL) or its lease has
  expired; sets the owner, ``epoch + 1`` and a new expiry, and appends the
  acquisition, with the row as it found it, to ``lease_history``, in the same
  statement. Two replicas racing for a partition: one wins, the other's WHERE no
  longer matches and it gets nothing.
* **renew**: only the owner, only at its epoch, only while the lease is unexpired.
  A lease that expired stays lost even if nobody took it yet: the replica must
  acquire it again, which bumps the epoch, so anything it queued under the old epoch
  stays fenced (``monitor/cluster/fencing.py``).
* **release**: only the owner at its epoch; keeps the epoch, so it still only grows.

Why compare-and-set on rows rather than advisory locks: an advisory lock belongs to a
database *session*. It vanishes when the connection drops (a PostgreSQL restart, a
pooler or NAT killing an idle connection) without the holder learning so until its
next statement, and reappears for whoever asks next, so two replicas can both believe
they hold it; it carries no epoch for writes to be fenced by; it cannot be seen by
other replicas (who owns what, since when) without ``pg_locks`` and superuser-ish
views; and it ties ownership to one pooled connection, which SQLAlchemy's pool and
PgBouncer's transaction mode hand to others. A lease row survives restarts and
failovers as data, expires by time rather than by connection, carries the fencing
epoch, and is as readable as any table. Its cost, a row update per partition per
renewal (once per ``ttl / 3`` seconds), is small next to the device writes.

Time: expiry is judged on the database's clock only, so replicas' wall clocks may
disagree freely. A replica measures its own lease from *before* it sent the statement
(``sent_at``, its monotonic clock): the database set ``expires_at = (its now) + ttl``
with its now no earlier than ``sent_at``, so ``Lease.valid_until = sent_at + ttl``
ends no later than the database's expiry (clocks ticking at the same rate; a margin
covers drift). A replica acts for a partition only before ``valid_until - margin``.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from monitor.cluster.errors import NeedsPostgres, PartitionCountMismatch
from monitor.cluster.partitions import check_partitions
from monitor.store.database import translated

MAX_OWNER_LENGTH: Final = 128


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this replica holds, as the database granted it."""

    partition: int
    epoch: int
    owner: str
    expires_at: datetime  # the database's clock
    valid_until: float  # this process's monotonic clock: sent_at + ttl
    # Acquisition only: the owner whose lease had expired when this one was taken
    # (None when the partition had been released, or never held): a takeover.
    taken_from: str | None = None

    def acting(self, now: float, *, margin: float) -> bool:
        """Whether the replica may still act (publish, alert) for the partition at ``now``.

        ``margin`` must cover a renewal's round trip and clock drift; stopping early is
        what lets a replica that cannot renew go quiet before anyone else may take over.
        """
        return now < self.valid_until - margin


def replica_identity(name: str) -> str:
    """The owner name of this process: ``name`` plus a suffix unique to this run.

    A replica restarted under the same name is a different owner: it must not renew,
    or write under, the leases of the process it replaces (which may still be alive,
    frozen).
    """
    if not name or len(name) > MAX_OWNER_LENGTH - 9 or any(c.isspace() for c in name):
        raise ValueError(f"replica name must be 1-{MAX_OWNER_LENGTH - 9} characters, no spaces")
    return f"{name}:{secrets.token_hex(4)}"


def _require_postgres(session: AsyncSession, operation: str) -> None:
    if session.get_bind().dialect.name != "postgresql":
        raise NeedsPostgres(operation)


async def ensure_partitions(session: AsyncSession, *, partitions: int) -> None:
    """Create the lease rows ``0 .. partitions-1``; refuse a different stored count."""
    _require_postgres(session, "set up partitions")
    check_partitions(partitions)
    count = text("SELECT count(*) FROM partition_leases")
    with translated("set up partitions"):
        stored = int((await session.execute(count)).scalar() or 0)
        if stored == 0:
            # Two first replicas at once: ON CONFLICT makes the second insert nothing.
            await session.execute(
                text(
                    "INSERT INTO partition_leases (partition, epoch) "
                    "SELECT p, 0 FROM generate_series(0, :last) AS p "
                    "ON CONFLICT (partition) DO NOTHING"
                ),
                {"last": partitions - 1},
            )
            stored = int((await session.execute(count)).scalar() or 0)
    if stored != partitions:
        raise PartitionCountMismatch(configured=partitions, stored=stored)


_ACQUIRE: Final = text(
    """
    WITH clock AS (SELECT clock_timestamp() AS now),
    previous AS (
        SELECT l.partition, l.owner, l.epoch, l.expires_at
        FROM partition_leases l, clock
        WHERE l.partition = :partition
          AND (l.owner IS NULL OR l.expires_at IS NULL OR l.expires_at <= clock.now)
        FOR UPDATE OF l
    ),
    taken AS (
        UPDATE partition_leases l
        SET owner = :owner, epoch = previous.epoch + 1, acquired_at = clock.now,
            expires_at = clock.now + make_interval(secs => :ttl)
        FROM previous, clock
        WHERE l.partition = previous.partition
        RETURNING l.partition, l.epoch, l.acquired_at, l.expires_at,
                  previous.owner AS previous_owner, previous.expires_at AS previous_expires_at
    ),
    logged AS (
        INSERT INTO lease_history
            (partition, epoch, owner, event, at, expires_at, previous_owner, previous_expires_at)
        SELECT partition, epoch, :owner, 'acquire', acquired_at, expires_at,
               previous_owner, previous_expires_at
        FROM taken
    )
    SELECT partition, epoch, expires_at, previous_owner FROM taken
    """
)


async def acquire(
    session: AsyncSession, *, partition: int, owner: str, ttl: float, sent_at: float
) -> Lease | None:
    """Take ``partition`` if it is free or expired; ``None`` if someone holds it.

    ``sent_at``: this process's monotonic clock just before the call.
    """
    _require_postgres(session, "acquire a lease")
    with translated("acquire a lease"):
        row = (
            await session.execute(
                _ACQUIRE, {"partition": partition, "owner": owner, "ttl": float(ttl)}
            )
        ).first()
    if row is None:
        return None
    return Lease(
        partition=row.partition,
        epoch=row.epoch,
        owner=owner,
        expires_at=row.expires_at,
        valid_until=sent_at + ttl,
        taken_from=row.previous_owner,
    )


_RENEW: Final = text(
    """
    WITH clock AS (SELECT clock_timestamp() AS now)
    UPDATE partition_leases l
    SET expires_at = clock.now + make_interval(secs => :ttl)
    FROM clock, unnest(CAST(:partitions AS integer[]), CAST(:epochs AS bigint[])) AS f(p, e)
    WHERE l.partition = f.p AND l.epoch = f.e AND l.owner = :owner
      AND l.expires_at > clock.now
    RETURNING l.partition, l.epoch, l.expires_at
    """
)


async def renew(
    session: AsyncSession, *, leases: Collection[Lease], ttl: float, sent_at: float
) -> dict[int, Lease]:
    """Extend every lease in ``leases`` still held; returns the renewed ones by partition.

    A lease missing from the result is lost (expired, or taken): stop acting for it.
    """
    _require_postgres(session, "renew leases")
    if not leases:
        return {}
    owners = {lease.owner for lease in leases}
    if len(owners) != 1:
        raise ValueError("renew leases of one owner at a time")
    (owner,) = owners
    params: dict[str, Any] = {
        "owner": owner,
        "ttl": float(ttl),
        "partitions": [lease.partition for lease in leases],
        "epochs": [lease.epoch for lease in leases],
    }
    with translated("renew leases"):
        rows = (await session.execute(_RENEW, params)).all()
    return {
        row.partition: Lease(
            partition=row.partition,
            epoch=row.epoch,
            owner=owner,
            expires_at=row.expires_at,
            valid_until=sent_at + ttl,
        )
        for row in rows
    }


_RELEASE: Final = text(
    """
    WITH released AS (
        UPDATE partition_leases
        SET owner = NULL, expires_at = NULL
        WHERE partition = :partition AND owner = :owner AND epoch = :epoch
        RETURNING partition, epoch
    ),
    logged AS (
        INSERT INTO lease_history (partition, epoch, owner, event, at)
        SELECT partition, epoch, :owner, 'release', clock_timestamp() FROM released
    )
    SELECT partition FROM released
    """
)


async def release(session: AsyncSession, *, lease: Lease) -> bool:
    """Hand ``lease`` back (after flushing its writes); False if it was no longer held."""
    _require_postgres(session, "release a lease")
    params = {"partition": lease.partition, "owner": lease.owner, "epoch": lease.epoch}
    with translated("release a lease"):
        return (await session.execute(_RELEASE, params)).first() is not None


async def lease_owners(session: AsyncSession) -> dict[int, str | None]:
    """Every partition's live owner (``None`` when released or expired), on the db clock."""
    _require_postgres(session, "read leases")
    with translated("read leases"):
        rows = (
            await session.execute(
                text(
                    "SELECT partition, CASE WHEN expires_at > clock_timestamp() "
                    "THEN owner END AS owner FROM partition_leases"
                )
            )
        ).all()
    return {row.partition: row.owner for row in rows}


async def heartbeat_member(
    session: AsyncSession, *, owner: str, ttl: float, lag: float | None = None
) -> None:
    """Say this replica is alive for ``ttl`` more seconds (joins on first call).

    ``lag``: the replica's write-behind lag now, for the cluster view.
    """
    _require_postgres(session, "announce a replica")
    with translated("announce a replica"):
        await session.execute(
            text(
                "INSERT INTO cluster_members (owner, joined_at, expires_at, renewed_at, "
                "lag_seconds) VALUES (:owner, clock_timestamp(), "
                "clock_timestamp() + make_interval(secs => :ttl), clock_timestamp(), :lag) "
                "ON CONFLICT (owner) DO UPDATE SET expires_at = EXCLUDED.expires_at, "
                "renewed_at = EXCLUDED.renewed_at, lag_seconds = EXCLUDED.lag_seconds"
            ),
            {"owner": owner, "ttl": float(ttl), "lag": lag},
        )


async def live_members(session: AsyncSession) -> list[str]:
    """The replicas whose membership has not expired, by name."""
    _require_postgres(session, "read replicas")
    with translated("read replicas"):
        rows = await session.execute(
            text(
                "SELECT owner FROM cluster_members WHERE expires_at > clock_timestamp() "
                "ORDER BY owner"
            )
        )
    return [row.owner for row in rows]


async def leave(session: AsyncSession, *, owner: str) -> None:
    """Remove this replica from the members (SIGTERM, after releasing its leases)."""
    _require_postgres(session, "leave the cluster")
    with translated("leave the cluster"):
        await session.execute(
            text("DELETE FROM cluster_members WHERE owner = :owner"), {"owner": owner}
        )
