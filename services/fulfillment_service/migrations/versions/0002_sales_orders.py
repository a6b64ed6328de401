"""Sales orders, their lines and shipments, and this service's copy of account tiers.

Revision ID: 0002_sales_orders
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_sales_orders"
down_revision = "0001"
SCHEMA = "fulfillment"


def _timestamp(name: str) -> "sa.Column[datetime]":
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "sales_orders",
        sa.Column("order_id", sa.String(100), primary_key=True),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("ordered_on", sa.Date, nullable=False),
        sa.Column("rush", sa.Boolean, nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        _timestamp("booked_at"),
        _timestamp("updated_at"),
        schema=SCHEMA,
    )
    op.create_index("ix_sales_orders_account", "sales_orders", ["account_id", "order_id"], schema=SCHEMA)
    op.create_index("ix_sales_orders_status", "sales_orders", ["status", "order_id"], schema=SCHEMA)
    op.create_table(
        "sales_order_lines",
        sa.Column(
            "order_id",
            sa.String(100),
            sa.ForeignKey(f"{SCHEMA}.sales_orders.order_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line_id", sa.String(100), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("requested_on", sa.Date, nullable=False),
        sa.Column("promised_on", sa.Date, nullable=False),
        sa.Column("unit_price", sa.Float, nullable=True),
        sa.Column("unit_cost", sa.Float, nullable=True),
        sa.Column("shipped", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint(
            "quantity > 0 AND shipped >= 0 AND shipped <= quantity", name="ck_sales_order_lines_quantities"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_sales_order_lines_sku", "sales_order_lines", ["sku", "order_id"], schema=SCHEMA)
    op.create_table(
        "shipments",
        sa.Column("shipment_id", sa.String(100), primary_key=True),
        sa.Column(
            "order_id",
            sa.String(100),
            sa.ForeignKey(f"{SCHEMA}.sales_orders.order_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("shipped_on", sa.Date, nullable=False),
        sa.Column("lines", postgresql.JSONB, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("order_version", sa.Integer, nullable=False),
        _timestamp("recorded_at"),
        schema=SCHEMA,
    )
    op.create_index("ix_shipments_order", "shipments", ["order_id"], schema=SCHEMA)
    op.create_table(
        "account_tiers",
        sa.Column("account_id", sa.String(100), primary_key=True),
        sa.Column("segment", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        _timestamp("updated_at"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("account_tiers", "shipments", "sales_order_lines", "sales_orders"):
        op.drop_table(table, schema=SCHEMA)
