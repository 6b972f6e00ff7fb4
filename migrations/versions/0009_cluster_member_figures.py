"""Cluster members report their last renewal and their write lag.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

``cluster_members.renewed_at`` is when the replica last renewed its membership (the
database's clock), ``lag_seconds`` the age of the oldest change it had not yet
committed at that moment (its write-behind lag). Both are written with every renewal,
so the cluster view (``clawbeat cluster status``, ``/api/cluster``) reads every
replica's health from the database, whichever replica or machine asks. Nullable: a
member row written before this revision has neither until its next renewal.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cluster_members") as batch:
        batch.add_column(sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lag_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cluster_members") as batch:
        batch.drop_column("lag_seconds")
        batch.drop_column("renewed_at")
