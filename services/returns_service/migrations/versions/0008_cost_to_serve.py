"""Cost-to-serve: the service's copy of sales orders and shipments, the rate-free ledger per account and month,
each account's counting day, and the activity rates; returns and complaints are read by account.

Revision ID: 0008_cost_to_serve
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008_cost_to_serve"
down_revision = "0007_promise_alerts"
SCHEMA = "returns"


def upgrade() -> None:
    op.create_table(
        "cost_orders",
        sa.Column("order_id", sa.String(100), primary_key=True),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("ordered_on", sa.Date, nullable=False),
        sa.Column("rush", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("lines", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_cost_orders_account", "cost_orders", ["account_id"], schema=SCHEMA)
    op.create_table(
        "cost_shipments",
        sa.Column("shipment_id", sa.String(100), primary_key=True),
        sa.Column("order_id", sa.String(100), nullable=False),
        sa.Column("shipped_on", sa.Date, nullable=False),
        sa.Column("lines", JSONB, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_cost_shipments_order", "cost_shipments", ["order_id"], schema=SCHEMA)
    counts = ("orders", "order_lines", "shipments", "backordered_lines", "rush_orders", "return_lines", "complaints")
    amounts = (
        "units_picked",
        "revenue",
        "cost_of_goods",
        "returned_units",
        "written_off_units",
        "written_off_cost",
        "unpriced_units",
    )
    op.create_table(
        "cost_ledger",
        sa.Column("account_id", sa.String(100), primary_key=True),
        sa.Column("month", sa.Date, primary_key=True),
        *[sa.Column(name, sa.Integer, nullable=False) for name in counts],
        *[sa.Column(name, sa.Float, nullable=False) for name in amounts],
        schema=SCHEMA,
    )
    op.create_index("ix_cost_ledger_month", "cost_ledger", ["month"], schema=SCHEMA)
    op.create_table(
        "cost_accounts",
        sa.Column("account_id", sa.String(100), primary_key=True),
        sa.Column("counted_as_of", sa.Date, nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_index("ix_cost_accounts_counted", "cost_accounts", ["counted_as_of"], schema=SCHEMA)
    op.create_table(
        "cost_rates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("rates", JSONB, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("ix_returns_account", "returns", ["account_id"], schema=SCHEMA)
    op.create_index("ix_complaints_account", "complaints", ["account_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_complaints_account", "complaints", schema=SCHEMA)
    op.drop_index("ix_returns_account", "returns", schema=SCHEMA)
    for table in ("cost_rates", "cost_accounts", "cost_ledger", "cost_shipments", "cost_orders"):
        op.drop_table(table, schema=SCHEMA)
