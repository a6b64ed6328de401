"""Tables of the promotion service (schema `promotion`)."""

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func
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

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
