"""Capacity conflicts per promotion and SKU, launches, and an index for the SKU filter.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
SCHEMA = "promotion"


def upgrade() -> None:
    op.create_table(
        "conflicts",
        sa.Column("promotion_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("weeks", postgresql.JSONB, nullable=False),
        sa.Column("total_shortfall", sa.Float, nullable=False),
        sa.Column("plan_version", sa.Integer, nullable=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_conflicts_sku", "conflicts", ["sku"], schema=SCHEMA)
    op.create_table(
        "launches",
        sa.Column("launch_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("launch_on", sa.Date, nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_launches_sku", "launches", ["sku"], schema=SCHEMA)
    # `?sku=` filters with jsonb containment on items; a GIN index keeps it off a sequential scan.
    op.execute(
        f"CREATE INDEX ix_promotions_items ON \"{SCHEMA}\".promotions USING gin ((body -> 'items') jsonb_path_ops)"
    )


def downgrade() -> None:
    op.execute(f'DROP INDEX IF EXISTS "{SCHEMA}".ix_promotions_items')
    op.drop_table("launches", schema=SCHEMA)
    op.drop_table("conflicts", schema=SCHEMA)
