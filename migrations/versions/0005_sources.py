"""Sources: fleets in other conventions (Sparkplug B, Tasmota, ...) the monitor watches.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

One row per declared source: its kind and the kind's options as a JSON object, the same
keys a ``[[source]]`` table of the sources file takes. Types are spelled out here rather
than imported from monitor.store.models, so this revision keeps creating the same schema
however the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("options", _json, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sources"),
    )


def downgrade() -> None:
    op.drop_table("sources")
