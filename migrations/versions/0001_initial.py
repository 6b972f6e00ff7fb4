"""Initial schema: device classes, devices, transitions, heartbeat rollups, monitor meta.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Types are spelled out here rather than imported from monitor.store.models, so this
revision keeps creating the same schema however the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_json_or_null = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
_big_pk = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    device_classes = op.create_table(
        "device_classes",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("interval", sa.Float(), nullable=True),
        sa.Column("grace", sa.Float(), nullable=False),
        sa.Column("missed_limit", sa.Integer(), nullable=False),
        sa.Column("lost_after", sa.Float(), nullable=True),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_device_classes"),
        sa.CheckConstraint(
            '"interval" IS NULL OR "interval" > 0', name="ck_device_classes_interval_positive"
        ),
        sa.CheckConstraint("grace >= 0", name="ck_device_classes_grace_not_negative"),
        sa.CheckConstraint("missed_limit >= 1", name="ck_device_classes_missed_limit_positive"),
        sa.CheckConstraint(
            "lost_after IS NULL OR lost_after > 0", name="ck_device_classes_lost_after_positive"
        ),
    )
    op.bulk_insert(
        device_classes,
        [
            {
                "name": "default",
                "interval": None,
                "grace": 10.0,
                "missed_limit": 3,
                "lost_after": 86_400.0,
                "description": "Devices not assigned to a class: trust the interval each announces.",
            }
        ],
    )

    op.create_table(
        "devices",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("since", _utc(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("session", sa.String(64), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=True),
        sa.Column("last_seen", _utc(), nullable=True),
        sa.Column("announced_interval", sa.Float(), nullable=True),
        sa.Column("fw", sa.String(64), nullable=True),
        sa.Column("latest_metrics", _json_or_null, nullable=True),
        sa.Column("interval_override", sa.Float(), nullable=True),
        sa.Column("class_name", sa.String(64), server_default=sa.text("'default'"), nullable=False),
        sa.Column("tags", _json, server_default=sa.text("'[]'"), nullable=False),
        sa.Column("in_maintenance", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.ForeignKeyConstraint(
            ["class_name"],
            ["device_classes.name"],
            name="fk_devices_class_name_device_classes",
            onupdate="CASCADE",
            ondelete="RESTRICT",
        ),
    )
    op.create_index("ix_devices_state", "devices", ["state"])
    op.create_index("ix_devices_class_name", "devices", ["class_name"])

    op.create_table(
        "transitions",
        sa.Column("id", _big_pk, autoincrement=True, nullable=False),
        sa.Column("uid", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("old_state", sa.String(32), nullable=True),
        sa.Column("new_state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("session", sa.String(64), nullable=True),
        sa.Column("at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
        sa.UniqueConstraint("uid", name="uq_transitions_uid"),
    )
    op.create_index("ix_transitions_device_id_at", "transitions", ["device_id", "at"])
    op.create_index("ix_transitions_at", "transitions", ["at"])

    op.create_table(
        "heartbeat_rollups",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("minute", _utc(), nullable=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("missed", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("latency_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("latency_max_ms", sa.Float(), nullable=True),
        sa.Column("jitter_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("jitter_sum_ms", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("jitter_max_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("device_id", "minute", name="pk_heartbeat_rollups"),
    )
    op.create_index("ix_heartbeat_rollups_minute", "heartbeat_rollups", ["minute"])

    op.create_table(
        "monitor_meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_monitor_meta"),
    )


def downgrade() -> None:
    op.drop_table("monitor_meta")
    op.drop_index("ix_heartbeat_rollups_minute", table_name="heartbeat_rollups")
    op.drop_table("heartbeat_rollups")
    op.drop_index("ix_transitions_at", table_name="transitions")
    op.drop_index("ix_transitions_device_id_at", table_name="transitions")
    op.drop_table("transitions")
    op.drop_index("ix_devices_class_name", table_name="devices")
    op.drop_index("ix_devices_state", table_name="devices")
    op.drop_table("devices")
    op.drop_table("device_classes")
