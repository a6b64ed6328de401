"""People acknowledge and resolve alerts: who (the API key's name) and when are recorded on the alert.

An alert resolved by the system (its cause went away) has `resolved_at` and no `resolved_by`; alerts resolved
before this revision keep both empty.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
SCHEMA = "returns"


def upgrade() -> None:
    op.add_column("alerts", sa.Column("acknowledged_by", sa.String(200), nullable=True), schema=SCHEMA)
    op.add_column("alerts", sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA)
    op.add_column("alerts", sa.Column("resolved_by", sa.String(200), nullable=True), schema=SCHEMA)
    op.add_column("alerts", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    for column in ("resolved_at", "resolved_by", "acknowledged_at", "acknowledged_by"):
        op.drop_column("alerts", column, schema=SCHEMA)
