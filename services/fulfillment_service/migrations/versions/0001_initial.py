"""Volumes, spikes, promotion windows, outbox and inbox.

Revision ID: 0001
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.migrations_ops import create_inbox, create_outbox

revision = "0001"
down_revision = None
SCHEMA = "fulfillment"


def _timestamp(name: str) -> "sa.Column[datetime]":
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "volumes",
        sa.Column("warehouse_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("units_ordered", sa.Integer, nullable=False),
        sa.Column("units_shipped", sa.Integer, nullable=False),
        sa.Column("units_backordered", sa.Integer, nullable=False),
        _timestamp("updated_at"),
        schema=SCHEMA,
    )
    op.create_index("ix_volumes_sku_day", "volumes", ["sku", "day"], schema=SCHEMA)
    op.create_table(
        "spikes",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("units", sa.Float, nullable=False),
        sa.Column("baseline", sa.Float, nullable=False),
        sa.Column("seasonal_baseline", sa.Float, nullable=False),
        sa.Column("level", sa.Float, nullable=False),
        sa.Column("sigma", sa.Float, nullable=False),
        sa.Column("ratio", sa.Float, nullable=True),
        sa.Column("excess_units", sa.Float, nullable=False),
        sa.Column("z_score", sa.Float, nullable=False),
        sa.Column("explained_by_promotion_id", sa.String(100), nullable=True),
        _timestamp("detected_at"),
        _timestamp("updated_at"),
        schema=SCHEMA,
    )
    op.create_index("ix_spikes_day", "spikes", ["day"], schema=SCHEMA)
    op.create_table(
        "promotion_windows",
        sa.Column("promotion_id", sa.String(100), primary_key=True),
        sa.Column("skus", postgresql.ARRAY(sa.String(100)), nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        _timestamp("updated_at"),
        schema=SCHEMA,
    )
    op.create_index("ix_promotion_windows_skus", "promotion_windows", ["skus"], schema=SCHEMA, postgresql_using="gin")
    create_outbox(SCHEMA)
    create_inbox(SCHEMA)


def downgrade() -> None:
    for table in ("promotion_windows", "spikes", "volumes", "outbox", "inbox"):
        op.drop_table(table, schema=SCHEMA)
