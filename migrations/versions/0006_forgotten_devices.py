"""Forgotten devices: tombstones that keep a forgotten device's retained messages away.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

``clawbeat devices forget`` deletes a device and records it here; a monitor that meets
the device's retained heartbeat or presence clears it instead of registering the device
again, and fresh evidence from the device removes the row.

Types are spelled out here rather than imported from monitor.store.models, so this
revision keeps creating the same schema however the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forgotten_devices",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forgotten_devices")
