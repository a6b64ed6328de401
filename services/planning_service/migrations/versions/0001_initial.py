"""Known promotions, drivers, outbox and inbox.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.migrations_ops import create_inbox, create_outbox

revision = "0001"
down_revision = None
SCHEMA = "planning"


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("promotion_id", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("last_event_id", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_table(
        "drivers",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(200), nullable=True),
        sa.Column("skus", postgresql.ARRAY(sa.String(100)), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_drivers_skus", "drivers", ["skus"], schema=SCHEMA, postgresql_using="gin")
    create_outbox(SCHEMA)
    create_inbox(SCHEMA)


def downgrade() -> None:
    for table in ("drivers", "promotions", "outbox", "inbox"):
        op.drop_table(table, schema=SCHEMA)
