"""Tables of the promotion service (schema `promotion`)."""

from sqlalchemy import Column, Date, DateTime, Float, Integer, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import JSONB

from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = MetaData(schema="promotion")

promotions = Table(
    "promotions",
    metadata,
    Column("promotion_id", String(100), primary_key=True),
    Column("body", JSONB, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("partition_key", String(100), nullable=False),
    Column("conflict", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Planning's open capacity conflicts, one row per (promotion, SKU); `promotions.conflict` is their summary.
conflicts = Table(
    "conflicts",
    metadata,
    Column("promotion_id", String(100), primary_key=True),
    Column("sku", String(100), primary_key=True),
    Column("weeks", JSONB, nullable=False),
    Column("total_shortfall", Float, nullable=False),
    Column("plan_version", Integer, nullable=True),
    Column("event_id", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

launches = Table(
    "launches",
    metadata,
    Column("launch_id", String(100), primary_key=True),
    Column("sku", String(100), nullable=False),
    Column("launch_on", Date, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
