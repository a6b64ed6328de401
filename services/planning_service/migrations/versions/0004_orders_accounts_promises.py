"""Booked orders and promising: planning's copies of sales orders, their lines and accounts, the allocation
policy and the promises at risk.

Revision ID: 0004_promising
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_promising"
down_revision = "0003_outbox_parking"
SCHEMA = "planning"


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(100), primary_key=True),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("tier", sa.String(20), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_id", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_orders_account_id", "orders", ["account_id"], schema=SCHEMA)
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String(100), primary_key=True),
        sa.Column("line_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("shipped_quantity", sa.Float, nullable=False),
        sa.Column("open_quantity", sa.Float, nullable=False),
        sa.Column("requested_on", sa.Date, nullable=False),
        sa.Column("promised_on", sa.Date, nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_order_lines_open_by_sku",
        "order_lines",
        ["sku"],
        schema=SCHEMA,
        postgresql_where=sa.text("open_quantity > 0"),
    )
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(100), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("segment", sa.String(20), nullable=False),
        sa.Column("owner_email", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_event_id", sa.String(200), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "allocation_policy",
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.text("true")),
        sa.Column("reserve_pct", postgresql.JSONB, nullable=False),
        sa.Column("release_days", sa.Integer, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("singleton", name="allocation_policy_one_row"),
        schema=SCHEMA,
    )
    op.create_table(
        "promises_at_risk",
        sa.Column("order_id", sa.String(100), primary_key=True),
        sa.Column("line_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("promised_on", sa.Date, nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("quantity_short", sa.Float, nullable=False),
        sa.Column("new_earliest_on", sa.Date, nullable=True),
        sa.Column("plan_version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_promises_at_risk_sku", "promises_at_risk", ["sku"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("promises_at_risk", "allocation_policy", "accounts", "order_lines", "orders"):
        op.drop_table(table, schema=SCHEMA)
