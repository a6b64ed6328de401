"""Returns, complaints, accounts, volumes, promotions copy, alerts, alert changes and webhooks.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0002"
down_revision = "0001"
SCHEMA = "returns"


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    default = None if nullable else sa.func.now()
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("segment", sa.String(20), nullable=False),
        sa.Column("owner_email", sa.String(320), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "returns",
        sa.Column("return_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(30), nullable=False),
        sa.Column("condition", sa.String(20), nullable=False),
        sa.Column("returned_on", sa.Date, nullable=False),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        _ts("created_at"),
        schema=SCHEMA,
    )
    op.create_index("ix_returns_sku_day", "returns", ["sku", "returned_on"], schema=SCHEMA)
    op.create_table(
        "complaints",
        sa.Column("complaint_id", sa.String(100), primary_key=True),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("sku", sa.String(100), nullable=True),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("received_on", sa.Date, nullable=False),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        _ts("created_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "daily_volumes",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("units_ordered", sa.Integer, nullable=False),
        sa.Column("units_shipped", sa.Integer, nullable=False),
        sa.Column("units_backordered", sa.Integer, nullable=False),
        _ts("updated_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "promotions",
        sa.Column("promotion_id", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("skus", ARRAY(sa.String(100)), nullable=False),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
        sa.Column("account_segments", ARRAY(sa.String(50)), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        _ts("updated_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(40), primary_key=True),
        sa.Column("type", sa.String(30), nullable=False),
        sa.Column("subject", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("sku", sa.String(100), nullable=True),
        sa.Column("account_ids", ARRAY(sa.String(100)), nullable=False),
        sa.Column("accounts", JSONB, nullable=False),
        sa.Column("details", JSONB, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        schema=SCHEMA,
    )
    op.create_index(
        "ux_alerts_open",
        "alerts",
        ["type", "subject"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index("ix_alerts_updated", "alerts", ["updated_at", "alert_id"], schema=SCHEMA)
    op.create_table(
        "alert_changes",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("alert_id", sa.String(40), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("type", sa.String(30), nullable=False),
        sa.Column("sku", sa.String(100), nullable=True),
        sa.Column("payload", JSONB, nullable=False),
        _ts("created_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("endpoint_id", sa.String(40), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_types", ARRAY(sa.String(60)), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
        _ts("failing_since", nullable=True),
        _ts("disabled_at", nullable=True),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=True),
        _ts("created_at"),
        schema=SCHEMA,
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column(
            "endpoint_id",
            sa.String(40),
            sa.ForeignKey(f"{SCHEMA}.webhook_endpoints.endpoint_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(60), nullable=False),
        sa.Column("alert_id", sa.String(40), nullable=False),
        sa.Column("change_seq", sa.BigInteger, nullable=False),
        sa.Column("event_type", sa.String(60), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        _ts("next_attempt_at"),
        _ts("last_attempt_at", nullable=True),
        _ts("delivered_at", nullable=True),
        _ts("created_at"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "delivery_id"], schema=SCHEMA)
    op.create_table(
        "webhook_attempts",
        sa.Column("attempt_id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column(
            "delivery_id",
            sa.BigInteger,
            sa.ForeignKey(f"{SCHEMA}.webhook_deliveries.delivery_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_attempts_delivery", "webhook_attempts", ["delivery_id", "attempt"], schema=SCHEMA)


def downgrade() -> None:
    for table in (
        "webhook_attempts",
        "webhook_deliveries",
        "webhook_endpoints",
        "alert_changes",
        "alerts",
        "promotions",
        "daily_volumes",
        "complaints",
        "returns",
        "accounts",
    ):
        op.drop_table(table, schema=SCHEMA)
