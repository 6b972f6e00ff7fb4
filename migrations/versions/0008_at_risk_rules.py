"""At-risk alert rules: ``alert_rules.kind`` and ``min_risk``; alerts of kind ``at-risk``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

A rule of kind ``at-risk`` asks for an alert when a device's risk level (the risk
scorer's, ``monitor/risk``) reaches ``min_risk``; existing rules become kind ``state``
and keep routing exactly as before. Batch mode rebuilds the tables on SQLite, which
cannot alter a check constraint.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KINDS = "kind IN ('device', 'outage', 'recoveries')"
_NEW_KINDS = "kind IN ('device', 'outage', 'recoveries', 'at-risk')"


def upgrade() -> None:
    with op.batch_alter_table("alert_rules") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), server_default=sa.text("'state'"), nullable=False)
        )
        batch.add_column(sa.Column("min_risk", sa.String(16), nullable=True))
        batch.create_check_constraint("ck_alert_rules_kind_known", "kind IN ('state', 'at-risk')")
        batch.create_check_constraint(
            "ck_alert_rules_min_risk_for_at_risk",
            "(kind = 'state' AND min_risk IS NULL) OR "
            "(kind = 'at-risk' AND min_risk IN ('elevated', 'high'))",
        )
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("ck_alerts_kind_known", type_="check")
        batch.create_check_constraint("ck_alerts_kind_known", _NEW_KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM alerts WHERE kind = 'at-risk'")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("ck_alerts_kind_known", type_="check")
        batch.create_check_constraint("ck_alerts_kind_known", _OLD_KINDS)
    op.execute("DELETE FROM alert_rules WHERE kind = 'at-risk'")
    with op.batch_alter_table("alert_rules") as batch:
        batch.drop_constraint("ck_alert_rules_min_risk_for_at_risk", type_="check")
        batch.drop_constraint("ck_alert_rules_kind_known", type_="check")
        batch.drop_column("min_risk")
        batch.drop_column("kind")
