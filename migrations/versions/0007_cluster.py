"""Cluster: partition leases, their history, and the live replicas.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

``partition_leases`` holds one row per partition (created by the first replica, see
``monitor/cluster/leases.py``); ``lease_history`` one row per acquisition or release;
``cluster_members`` one row per live replica. Used on PostgreSQL only; SQLite gets the
(empty) tables so both schemas stay the same.

Types are spelled out here rather than imported from monitor.store.models, so this
revision keeps creating the same schema however the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "partition_leases",
        sa.Column("partition", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("partition", name="pk_partition_leases"),
        sa.CheckConstraint("partition >= 0", name="ck_partition_leases_partition_not_negative"),
        sa.CheckConstraint("epoch >= 0", name="ck_partition_leases_epoch_not_negative"),
    )
    op.create_table(
        "lease_history",
        sa.Column("id", _BIGINT_PK, nullable=False, autoincrement=True),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous_owner", sa.String(128), nullable=True),
        sa.Column("previous_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_lease_history"),
    )
    op.create_index("ix_lease_history_partition_epoch", "lease_history", ["partition", "epoch"])
    op.create_table(
        "cluster_members",
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", name="pk_cluster_members"),
    )


def downgrade() -> None:
    op.drop_table("cluster_members")
    op.drop_index("ix_lease_history_partition_epoch", table_name="lease_history")
    op.drop_table("lease_history")
    op.drop_table("partition_leases")
