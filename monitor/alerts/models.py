"""ORM models of the alerting tables, on the store's ``Base``.

``monitor/store/models.py`` imports this module at its end, so whoever loads the schema
(alembic, the schema test) sees these tables; ``migrations/versions/0003_alerting.py``
creates exactly them.

* ``channels``: named notification targets, each an apprise URL (a secret: shown only
  redacted).
* ``alert_rules``: route alerts by device class, tags and severity to channels; a rule of
  ``kind`` ``at-risk`` asks for at-risk alerts from ``min_risk`` up instead (0008).
* ``alerts``: one row per alert (a device down, an outage incident, a group of
  recoveries). ``key`` is unique per alert and makes a retried insert harmless;
  ``open_key`` is set while the alert is open and is unique too, so a device (or an
  incident) can never have two open alerts, whatever races.
* ``alert_deliveries``: the outbox. One row per notification per channel, with a
  unique ``dedup_key``; the worker claims rows by compare-and-set, retries with
  capped exponential backoff and marks them ``sent`` or ``failed``.
* ``maintenance_windows`` and ``mutes``: what silences which devices when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from monitor.store.models import (
    ID_LENGTH,
    STATE_LENGTH,
    Base,
    BigIntegerPK,
    JSONList,
    JSONObjectOrNull,
    UTCDateTime,
)

# The same type as BigIntegerPK, without the primary-key connotation.
BigIntegerFK = BigInteger().with_variant(Integer(), "sqlite")

NAME_LENGTH: Final = 64
KEY_LENGTH: Final = 255
ALERT_KINDS: Final = ("device", "outage", "recoveries", "at-risk")
RULE_KINDS: Final = ("state", "at-risk")
RISK_LEVELS: Final = ("elevated", "high")
ALERT_STATUSES: Final = ("open", "resolved")
SEVERITIES: Final = ("warning", "critical")
DELIVERY_STATES: Final = ("pending", "sending", "sent", "failed")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({listed})"


class Channel(Base):
    __tablename__ = "channels"

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlertRule(Base):
    __tablename__ = "alert_rules"
    __table_args__ = (
        CheckConstraint(_one_of("min_severity", SEVERITIES), name="severity_known"),
        CheckConstraint(_one_of("kind", RULE_KINDS), name="kind_known"),
        CheckConstraint(
            f"(kind = 'state' AND min_risk IS NULL) OR "
            f"(kind = 'at-risk' AND {_one_of('min_risk', RISK_LEVELS)})",
            name="min_risk_for_at_risk",
        ),
    )

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    classes: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    tags: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    min_severity: Mapped[str] = mapped_column(String(16), server_default=text("'critical'"))
    channels: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    escalate_to: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16), server_default=text("'state'"))
    min_risk: Mapped[str | None] = mapped_column(String(16))


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ALERT_KINDS), name="kind_known"),
        CheckConstraint(_one_of("status", ALERT_STATUSES), name="status_known"),
        CheckConstraint(_one_of("severity", SEVERITIES), name="severity_known"),
        Index("ix_alerts_status", "status"),
        Index("ix_alerts_device_id", "device_id"),
        Index("ix_alerts_opened_at", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    open_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    state: Mapped[str] = mapped_column(String(STATE_LENGTH))
    reason: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    flapping: Mapped[bool] = mapped_column(Boolean, server_default=false())
    title: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text, server_default=text("''"))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONObjectOrNull)
    channels: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    escalate_to: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_notified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    repeats: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertDelivery(Base):
    __tablename__ = "alert_deliveries"
    __table_args__ = (
        CheckConstraint(_one_of("state", DELIVERY_STATES), name="state_known"),
        Index("ix_alert_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_alert_deliveries_alert_id", "alert_id"),
    )

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(BigIntegerFK, ForeignKey("alerts.id", ondelete="CASCADE"))
    dedup_key: Mapped[str] = mapped_column(String(KEY_LENGTH), unique=True)
    channel: Mapped[str] = mapped_column(String(NAME_LENGTH))
    event: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    notify_type: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MaintenanceWindow(Base):
    """One-off (``starts_at``..``ends_at``) or weekly (``recurrence``, ``duration`` in
    seconds, ``timezone``), for the devices, classes and tags named (none: all)."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (
        CheckConstraint(
            "recurrence IS NOT NULL OR (starts_at IS NOT NULL AND ends_at IS NOT NULL)",
            name="bounded_or_recurring",
        ),
        CheckConstraint("recurrence IS NULL OR duration > 0", name="duration_positive"),
    )

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    devices: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    classes: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    tags: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recurrence: Mapped[str | None] = mapped_column(String(64))
    duration: Mapped[float | None] = mapped_column(Float)
    timezone: Mapped[str] = mapped_column(String(64), server_default=text("'UTC'"))
    note: Mapped[str] = mapped_column(Text, server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Mute(Base):
    """Silence the devices, classes and tags named (none: all) until ``until``."""

    __tablename__ = "mutes"

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True, autoincrement=True)
    devices: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    classes: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    tags: Mapped[list[str]] = mapped_column(JSONList, server_default=text("'[]'"))
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, server_default=text("''"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
