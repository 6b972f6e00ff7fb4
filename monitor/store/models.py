"""ORM models: the tables clawbeat keeps.

``migrations/versions`` creates exactly these tables; a test compares the two on both
PostgreSQL and SQLite, so a change here without a migration fails CI.

Who writes what:

* the write-behind writer owns the *runtime* columns of ``devices`` (state, since,
  reason, session, last_seq, last_seen, announced_interval, fw, latest_metrics) and
  appends ``transitions`` and ``heartbeat_rollups``;
* operators (API, CLI) own the *configuration* columns (class_name, interval_override,
  tags, in_maintenance) and ``device_classes``. The writer's upsert never touches them,
  so an operator's change cannot be overwritten by a batch queued before it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names are fixed by convention so migrations can name what they alter;
# SQLite batch mode has to recreate tables by name.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DEFAULT_CLASS: Final = "default"

ID_LENGTH: Final = 64  # protocol: device and session ids are 1-64 characters
STATE_LENGTH: Final = 32


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores ``timestamptz``. SQLite has no time zone type, so values are
    stored as naive UTC and given their zone back on the way out. Naive datetimes are
    refused: a local-time value stored as UTC would silently shift every timeline.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - signature fixed by TypeDecorator
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# jsonb on PostgreSQL (indexable, compact); JSON text on SQLite.
JSONList = JSON().with_variant(JSONB(), "postgresql")
JSONObjectOrNull = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; BIGINT would need explicit ids.
BigIntegerPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DeviceClass(Base):
    """Timing rules shared by a group of devices.

    ``interval``: expected seconds between heartbeats; NULL trusts what each device
    announces. ``grace``: seconds of slack after an expected heartbeat before it counts
    as missed. ``missed_limit``: consecutive missed heartbeats before the device is
    down. ``lost_after``: seconds a device may stay down or offline before it is lost;
    NULL means never.
    """

    __tablename__ = "device_classes"
    __table_args__ = (
        CheckConstraint('"interval" IS NULL OR "interval" > 0', name="interval_positive"),
        CheckConstraint("grace >= 0", name="grace_not_negative"),
        CheckConstraint("missed_limit >= 1", name="missed_limit_positive"),
        CheckConstraint("lost_after IS NULL OR lost_after > 0", name="lost_after_positive"),
    )

    name: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    interval: Mapped[float | None] = mapped_column(Float)
    grace: Mapped[float] = mapped_column(Float)
    missed_limit: Mapped[int] = mapped_column(Integer)
    lost_after: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_state", "state"),
        Index("ix_devices_class_name", "class_name"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    # Runtime columns, written by the write-behind writer.
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    session: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    last_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    announced_interval: Mapped[float | None] = mapped_column(Float)
    # Estimated device clock minus the monitor's, seconds (liveness/clock.py).
    clock_offset: Mapped[float | None] = mapped_column(Float)
    fw: Mapped[str | None] = mapped_column(String(64))
    latest_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONObjectOrNull)
    # Configuration columns, written by operators only.
    interval_override: Mapped[float | None] = mapped_column(Float)
    class_name: Mapped[str] = mapped_column(
        String(ID_LENGTH),
        ForeignKey("device_classes.name", onupdate="CASCADE", ondelete="RESTRICT"),
        server_default=text(f"'{DEFAULT_CLASS}'"),
    )
    tags: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    in_maintenance: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # Bookkeeping.
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TransitionRecord(Base):
    """One state change of one device: the only history clawbeat keeps.

    Alerts, timelines and uptime reports all read this table. ``uid`` is made by the
    monitor when the transition happens, so a batch retried after a commit whose
    acknowledgement was lost inserts nothing twice. There is deliberately no foreign
    key to ``devices``: the device row and its transitions are written in different
    batches, and history must never be refused because of that ordering.
    """

    __tablename__ = "transitions"
    __table_args__ = (
        Index("ix_transitions_device_id_at", "device_id", "at"),
        Index("ix_transitions_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    uid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    device_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    old_state: Mapped[str | None] = mapped_column(String(STATE_LENGTH))
    new_state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    reason: Mapped[str | None] = mapped_column(Text)
    session: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class HeartbeatRollup(Base):
    """Per-device, per-minute heartbeat figures for dashboards.

    ``count`` heartbeats arrived in the minute and ``missed`` were expected but absent.
    Latency and jitter keep sum, count and max so any window can be averaged exactly
    by adding rows up.
    """

    __tablename__ = "heartbeat_rollups"
    __table_args__ = (Index("ix_heartbeat_rollups_minute", "minute"),)

    device_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    missed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    latency_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    latency_sum_ms: Mapped[float] = mapped_column(Float, server_default=text("0"))
    latency_max_ms: Mapped[float | None] = mapped_column(Float)
    jitter_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    jitter_sum_ms: Mapped[float] = mapped_column(Float, server_default=text("0"))
    jitter_max_ms: Mapped[float | None] = mapped_column(Float)


class MonitorMeta(Base):
    """Small named values the monitor keeps across restarts (e.g. its last clean stop)."""

    __tablename__ = "monitor_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ForgottenDevice(Base):
    """A device ops forgot (``clawbeat devices forget``), until it is heard alive again.

    The broker may still retain its heartbeat and presence (the monitor may not have
    been running to clear them): a monitor replaying them after a restart clears them
    instead of registering the device again. Fresh evidence removes the row.
    """

    __tablename__ = "forgotten_devices"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    forgotten_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token for the HTTP API.

    Only ``token_hash`` (hex SHA-256 of the token) is stored; the token is shown once
    when created. ``scope`` is ``read`` (GET endpoints) or ``admin`` (everything).
    A revoked token keeps its row, with ``revoked_at`` set, so ``token list`` can
    still say who had access and when it ended.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("scope IN ('read', 'admin')", name="scope_known"),)

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SourceRow(Base):
    """A fleet in another convention the monitor watches (``monitor/sources``).

    ``options`` holds the kind's keys exactly as a ``[[source]]`` table of the sources
    file would (``interval``, ``group``, ``topic``, ...), checked by the same code before
    they are stored. The monitor reads the table when it starts.
    """

    __tablename__ = "sources"

    name: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSONList)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PartitionLease(Base):
    """Who owns one partition of the fleet (cluster mode, ``docs/cluster.md``).

    ``epoch`` grows by one at every acquisition and never goes back: it is the fencing
    token every write for the partition carries. ``owner`` is NULL when released; a
    lease whose ``expires_at`` has passed (on the database's clock) is free to take.
    Written only by the compare-and-set statements in ``monitor/cluster/leases.py``.
    """

    __tablename__ = "partition_leases"
    __table_args__ = (
        CheckConstraint("partition >= 0", name="partition_not_negative"),
        CheckConstraint("epoch >= 0", name="epoch_not_negative"),
    )

    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(128))
    epoch: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LeaseEvent(Base):
    """One acquisition or release of a partition lease, written by the same statement.

    ``previous_owner`` and ``previous_expires_at`` are the lease row as the acquiring
    statement found it (under its row lock), so the history proves on its own that no
    lease was taken while another owner's was still running: for every acquisition,
    ``previous_owner IS NULL OR previous_expires_at <= at``.
    """

    __tablename__ = "lease_history"
    __table_args__ = (Index("ix_lease_history_partition_epoch", "partition", "epoch"),)

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    partition: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(BigInteger)
    owner: Mapped[str] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_owner: Mapped[str | None] = mapped_column(String(128))
    previous_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClusterMember(Base):
    """A live replica: renewed with its leases, gone once ``expires_at`` has passed.

    Every replica spreads the partitions over the members it reads here
    (``monitor/cluster/rebalance.py``), so a joining replica is seen by all of them.
    """

    __tablename__ = "cluster_members"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Written with every renewal (the cluster view reads them): when, and the replica's
    # write-behind lag then.
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lag_seconds: Mapped[float | None] = mapped_column(Float)
