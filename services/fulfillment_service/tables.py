"""Tables of the fulfillment service (schema `fulfillment`)."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = MetaData(schema="fulfillment")

# The latest figures each warehouse reported per SKU and day; a correction overwrites its row.
# Keyed by SKU first: the daily totals and the spike rule read a SKU's days across warehouses, and listings go in
# (sku, day, warehouse_id) order, all from the primary key, so a row has one index entry to write.
volumes = Table(
    "volumes",
    metadata,
    Column("warehouse_id", String(100), nullable=False),
    Column("sku", String(100), nullable=False),
    Column("day", Date, nullable=False),
    Column("units_ordered", Integer, nullable=False),
    Column("units_shipped", Integer, nullable=False),
    Column("units_backordered", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("sku", "day", "warehouse_id", name="volumes_pkey"),
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

# Sales orders as booked and since changed; `request_hash` is the fingerprint of the booking request.
sales_orders = Table(
    "sales_orders",
    metadata,
    Column("order_id", String(100), primary_key=True),
    Column("account_id", String(100), nullable=False),
    Column("ordered_on", Date, nullable=False),
    Column("rush", Boolean, nullable=False),
    Column("cancelled", Boolean, nullable=False),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_sales_orders_account", "account_id", "order_id"),
    Index("ix_sales_orders_status", "status", "order_id"),
)

sales_order_lines = Table(
    "sales_order_lines",
    metadata,
    Column("order_id", String(100), ForeignKey("sales_orders.order_id", ondelete="CASCADE"), primary_key=True),
    Column("line_id", String(100), primary_key=True),
    # Lines keep the order the client gave them in.
    Column("position", Integer, nullable=False),
    Column("sku", String(100), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("requested_on", Date, nullable=False),
    Column("promised_on", Date, nullable=False),
    Column("unit_price", Float, nullable=True),
    Column("unit_cost", Float, nullable=True),
    Column("shipped", Integer, nullable=False, server_default="0"),
    CheckConstraint("quantity > 0 AND shipped >= 0 AND shipped <= quantity", name="ck_sales_order_lines_quantities"),
    Index("ix_sales_order_lines_sku", "sku", "order_id"),
)

# One row per delivery; `request_hash` makes a repeated shipment_id an identical retry or a conflict.
shipments = Table(
    "shipments",
    metadata,
    Column("shipment_id", String(100), primary_key=True),
    Column("order_id", String(100), ForeignKey("sales_orders.order_id", ondelete="CASCADE"), nullable=False),
    Column("shipped_on", Date, nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("order_version", Integer, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_shipments_order", "order_id"),
)

# This service's own copy of each account's tier, from `salesops.accounts` (newest version wins).
account_tiers = Table(
    "account_tiers",
    metadata,
    Column("account_id", String(100), primary_key=True),
    Column("segment", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
