"""Tables of the planning service (schema `planning`)."""

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = MetaData(schema="planning")

# Planning's own copy of every promotion it has heard of (event-carried state), newest version wins.
promotions = Table(
    "promotions",
    metadata,
    Column("promotion_id", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("body", JSONB, nullable=False),
    Column("last_event_id", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The audit trail: every event that shaped a plan, with the SKUs it touched and a one-line summary.
drivers = Table(
    "drivers",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("event_type", String(200), nullable=False),
    Column("subject", String(200), nullable=True),
    Column("skus", ARRAY(String(100)), nullable=False),
    Column("summary", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_drivers_skus", "skus", postgresql_using="gin"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
