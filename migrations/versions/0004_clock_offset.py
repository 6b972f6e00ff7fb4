"""Devices: the estimated clock offset of each device.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

``clock_offset`` is the device's clock minus the monitor's, in seconds, as estimated
from its heartbeats' ``ts`` (``monitor/liveness/clock.py``); NULL until a heartbeat of
its current session carried one. Stored so a restarted monitor keeps correcting that
device's latency figures, and so the API can show it for a device that is not beating.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("clock_offset", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("clock_offset")
