"""Promotions, outbox and inbox.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.migrations_ops import create_inbox, create_outbox

revision = "0001"
down_revision = None
SCHEMA = "promotion"


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("promotion_id", sa.String(100), primary_key=True),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("partition_key", sa.String(100), nullable=False),
        sa.Column("conflict", postgresql.JSONB, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_promotions_status", "promotions", ["status"], schema=SCHEMA)
    create_outbox(SCHEMA)
    create_inbox(SCHEMA)


def downgrade() -> None:
    op.drop_table("promotions", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("inbox", schema=SCHEMA)
