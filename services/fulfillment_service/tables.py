"""Tables of the fulfillment service (schema `fulfillment`)."""

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY

from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = MetaData(schema="fulfillment")

# The latest figures each warehouse reported per SKU and day; a correction overwrites its row.
volumes = Table(
    "volumes",
    metadata,
    Column("warehouse_id", String(100), primary_key=True),
    Column("sku", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("units_ordered", Integer, nullable=False),
    Column("units_shipped", Integer, nullable=False),
    Column("units_backordered", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_volumes_sku_day", "sku", "day"),
)

# One row per SKU and day ever judged a spike; a correction that removes it marks it retracted.
spikes = Table(
    "spikes",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("status", String(20), nullable=False),
    Column("units", Float, nullable=False),
    Column("baseline", Float, nullable=False),
    Column("seasonal_baseline", Float, nullable=False),
    Column("level", Float, nullable=False),
    Column("sigma", Float, nullable=False),
    Column("ratio", Float, nullable=True),
    Column("excess_units", Float, nullable=False),
    Column("z_score", Float, nullable=False),
    Column("explained_by_promotion_id", String(100), nullable=True),
    Column("detected_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_spikes_day", "day"),
)

# This service's own copy of promotion windows, from `salesops.promotions`.
promotion_windows = Table(
    "promotion_windows",
    metadata,
    Column("promotion_id", String(100), primary_key=True),
    Column("skus", ARRAY(String(100)), nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("cancelled", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_promotion_windows_skus", "skus", postgresql_using="gin"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
