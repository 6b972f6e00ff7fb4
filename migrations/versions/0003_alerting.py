"""Alerting: channels, rules, alerts and their delivery outbox, maintenance windows, mutes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Types are spelled out here rather than imported from monitor.alerts.models, so this
revision keeps creating the same schema however the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_json_or_null = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
_big_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_empty_list = sa.text("'[]'")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _list(name: str) -> sa.Column[object]:
    return sa.Column(name, _json, server_default=_empty_list, nullable=False)


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_channels"),
    )

    op.create_table(
        "alert_rules",
        sa.Column("name", sa.String(64), nullable=False),
        _list("classes"),
        _list("tags"),
        sa.Column(
            "min_severity", sa.String(16), server_default=sa.text("'critical'"), nullable=False
        ),
        _list("channels"),
        _list("escalate_to"),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_alert_rules"),
        sa.CheckConstraint(
            "min_severity IN ('warning', 'critical')", name="ck_alert_rules_severity_known"
        ),
    )

    op.create_table(
        "alerts",
        sa.Column("id", _big_pk, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("open_key", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("flapping", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("details", _json_or_null, nullable=True),
        _list("channels"),
        _list("escalate_to"),
        sa.Column("opened_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("resolved_at", _utc(), nullable=True),
        sa.Column("last_notified_at", _utc(), nullable=False),
        sa.Column("repeats", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("escalated_at", _utc(), nullable=True),
        sa.Column("acknowledged_at", _utc(), nullable=True),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        sa.Column("snoozed_until", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.UniqueConstraint("key", name="uq_alerts_key"),
        sa.UniqueConstraint("open_key", name="uq_alerts_open_key"),
        sa.CheckConstraint(
            "kind IN ('device', 'outage', 'recoveries')", name="ck_alerts_kind_known"
        ),
        sa.CheckConstraint("status IN ('open', 'resolved')", name="ck_alerts_status_known"),
        sa.CheckConstraint("severity IN ('warning', 'critical')", name="ck_alerts_severity_known"),
    )
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.create_index("ix_alerts_device_id", "alerts", ["device_id"])
    op.create_index("ix_alerts_opened_at", "alerts", ["opened_at"])

    op.create_table(
        "alert_deliveries",
        sa.Column("id", _big_pk, autoincrement=True, nullable=False),
        sa.Column("alert_id", _big_pk, nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("notify_type", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", _utc(), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", _utc(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("sent_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
        sa.UniqueConstraint("dedup_key", name="uq_alert_deliveries_dedup_key"),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name="fk_alert_deliveries_alert_id_alerts",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'sending', 'sent', 'failed')",
            name="ck_alert_deliveries_state_known",
        ),
    )
    op.create_index(
        "ix_alert_deliveries_state_next_attempt_at",
        "alert_deliveries",
        ["state", "next_attempt_at"],
    )
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])

    op.create_table(
        "maintenance_windows",
        sa.Column("id", _big_pk, autoincrement=True, nullable=False),
        _list("devices"),
        _list("classes"),
        _list("tags"),
        sa.Column("starts_at", _utc(), nullable=True),
        sa.Column("ends_at", _utc(), nullable=True),
        sa.Column("recurrence", sa.String(64), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("timezone", sa.String(64), server_default=sa.text("'UTC'"), nullable=False),
        sa.Column("note", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_maintenance_windows"),
        sa.CheckConstraint(
            "recurrence IS NOT NULL OR (starts_at IS NOT NULL AND ends_at IS NOT NULL)",
            name="ck_maintenance_windows_bounded_or_recurring",
        ),
        sa.CheckConstraint(
            "recurrence IS NULL OR duration > 0",
            name="ck_maintenance_windows_duration_positive",
        ),
    )

    op.create_table(
        "mutes",
        sa.Column("id", _big_pk, autoincrement=True, nullable=False),
        _list("devices"),
        _list("classes"),
        _list("tags"),
        sa.Column("until", _utc(), nullable=False),
        sa.Column("note", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mutes"),
    )


def downgrade() -> None:
    op.drop_table("mutes")
    op.drop_table("maintenance_windows")
    op.drop_index("ix_alert_deliveries_alert_id", table_name="alert_deliveries")
    op.drop_index("ix_alert_deliveries_state_next_attempt_at", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alerts_opened_at", table_name="alerts")
    op.drop_index("ix_alerts_device_id", table_name="alerts")
    op.drop_index("ix_alerts_status", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
    op.drop_table("channels")
