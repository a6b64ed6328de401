"""Item master, planning inputs (launches, volumes, spikes, returns), plans, revisions, conflicts, snapshots.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
SCHEMA = "planning"


def _now() -> sa.Column[object]:
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("on_hand", sa.Float, nullable=False),
        sa.Column("safety_stock", sa.Float, nullable=False),
        sa.Column("lot_size", sa.Float, nullable=False),
        sa.Column("weekly_capacity", sa.Float, nullable=True),
        sa.Column("frozen_weeks", sa.Integer, nullable=False),
        sa.Column("baseline_weekly_demand", sa.Float, nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        _now(),
        schema=SCHEMA,
    )
    op.create_table(
        "launches",
        sa.Column("launch_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("last_event_id", sa.String(200), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_launches_sku", "launches", ["sku"], schema=SCHEMA)
    op.create_table(
        "daily_volumes",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("units_ordered", sa.Integer, nullable=False),
        sa.Column("units_shipped", sa.Integer, nullable=False),
        sa.Column("units_backordered", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "spikes",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("units", sa.Float, nullable=False),
        sa.Column("baseline", sa.Float, nullable=False),
        sa.Column("explained_by_promotion_id", sa.String(100), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_table(
        "returns",
        sa.Column("return_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("condition", sa.String(20), nullable=False),
        sa.Column("resolution", sa.String(20), nullable=True),
        sa.Column("returned_on", sa.Date, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_returns_sku", "returns", ["sku"], schema=SCHEMA)
    op.create_table(
        "plans",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("plan_version", sa.Integer, nullable=False),
        sa.Column("horizon_start", sa.Date, nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("weeks", postgresql.JSONB, nullable=False),
        sa.Column("exceptions", postgresql.JSONB, nullable=False),
        sa.Column("total_forecast", sa.Float, nullable=False),
        sa.Column("total_mps", sa.Float, nullable=False),
        sa.Column("shortfall_weeks", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "plan_revisions",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("plan_version", sa.Integer, primary_key=True),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("driver_event_ids", postgresql.ARRAY(sa.String(200)), nullable=False),
        sa.Column("changes", postgresql.JSONB, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "conflicts",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("promotion_ids", postgresql.ARRAY(sa.String(100)), nullable=False),
        sa.Column("weeks", postgresql.JSONB, nullable=False),
        sa.Column("total_shortfall", sa.Float, nullable=False),
        sa.Column("plan_version", sa.Integer, nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "forecast_snapshots",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("week_start", sa.Date, primary_key=True),
        sa.Column("forecast", sa.Float, nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_table(
        "planning_state",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", postgresql.JSONB, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "planning_state",
        "forecast_snapshots",
        "conflicts",
        "plan_revisions",
        "plans",
        "returns",
        "spikes",
        "daily_volumes",
        "launches",
        "items",
    ):
        op.drop_table(table, schema=SCHEMA)
