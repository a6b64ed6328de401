"""Tables of the planning service (schema `planning`)."""

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB

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

# The item master: what a SKU is made of for planning; `revision` counts the PUTs that changed it.
items = Table(
    "items",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("on_hand", Float, nullable=False),
    Column("safety_stock", Float, nullable=False),
    Column("lot_size", Float, nullable=False),
    Column("weekly_capacity", Float, nullable=True),
    Column("frozen_weeks", Integer, nullable=False),
    Column("baseline_weekly_demand", Float, nullable=True),
    Column("revision", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

launches = Table(
    "launches",
    metadata,
    Column("launch_id", String(100), primary_key=True),
    Column("sku", String(100), nullable=False, index=True),
    Column("body", JSONB, nullable=False),
    Column("last_event_id", String(200), nullable=False),
)

# Daily totals across warehouses as fulfillment last reported them: a correction replaces the day.
daily_volumes = Table(
    "daily_volumes",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("units_ordered", Integer, nullable=False),
    Column("units_shipped", Integer, nullable=False),
    Column("units_backordered", Integer, nullable=False),
)

# Order spikes by (sku, day); the newest event about a day wins (a retraction marks it `retracted`).
spikes = Table(
    "spikes",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("units", Float, nullable=False),
    Column("baseline", Float, nullable=False),
    Column("explained_by_promotion_id", String(100), nullable=True),
    Column("status", String(20), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=True),
)

returns = Table(
    "returns",
    metadata,
    Column("return_id", String(100), primary_key=True),
    Column("sku", String(100), nullable=False, index=True),
    Column("quantity", Integer, nullable=False),
    Column("condition", String(20), nullable=False),
    Column("resolution", String(20), nullable=True),
    Column("returned_on", Date, nullable=False),
)

# The current plan of every SKU with an item; `weeks` holds every PlanWeek field by name.
plans = Table(
    "plans",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("plan_version", Integer, nullable=False),
    Column("horizon_start", Date, nullable=False),
    Column("generated_at", DateTime(timezone=True), nullable=False),
    # `json`, not `jsonb`: written and read back whole, never searched in SQL
    Column("weeks", JSON, nullable=False),
    Column("exceptions", JSONB, nullable=False),
    Column("total_forecast", Float, nullable=False),
    Column("total_mps", Float, nullable=False),
    Column("shortfall_weeks", Integer, nullable=False),
)

# One row per plan version: which week fields moved, from what to what, and the events that moved them.
plan_revisions = Table(
    "plan_revisions",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("plan_version", Integer, primary_key=True),
    Column("generated_at", DateTime(timezone=True), nullable=False),
    Column("driver_event_ids", ARRAY(String(200)), nullable=False),
    # `json`, as the plan's weeks
    Column("changes", JSON, nullable=False),
)

# The open capacity conflict of a SKU, as last published (detected); deleted when resolved.
conflicts = Table(
    "conflicts",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("promotion_ids", ARRAY(String(100)), nullable=False),
    Column("weeks", JSONB, nullable=False),
    Column("total_shortfall", Float, nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("detected_at", DateTime(timezone=True), nullable=False),
)

# Each week's forecast as it stood when the week began: what accuracy is measured against.
forecast_snapshots = Table(
    "forecast_snapshots",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("week_start", Date, primary_key=True),
    Column("forecast", Float, nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Each SKU's fitted baseline model (domain.BaselineModel as JSON; null = the smoothing serves: history too
# short), the week it was fitted for (`origin`, the horizon's Monday then) and a digest of the history it saw.
# `history_changes` counts reports of weeks before the origin that arrived since; the fitter checks them (and
# fits again when they are material) and records the count it saw in `checked_changes`.
baseline_models = Table(
    "baseline_models",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("method", String(20), nullable=False),
    Column("model", JSONB(none_as_null=True), nullable=True),
    Column("origin", Date, nullable=False),
    Column("history_digest", JSONB, nullable=False),
    Column("fitted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("history_changes", Integer, nullable=False, server_default="0"),
    Column("checked_changes", Integer, nullable=False, server_default="0"),
    Index("ix_baseline_models_refit", "sku", postgresql_where=text("history_changes > checked_changes")),
)

# The SKUs a replica's fitter is fitting now: others skip them until the lease lapses or is released.
fit_leases = Table(
    "fit_leases",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("leased_until", DateTime(timezone=True), nullable=False),
)

# Service-wide facts, e.g. the ISO week the plans were last rolled to (key "horizon_start").
planning_state = Table(
    "planning_state",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", JSONB, nullable=False),
)

# ---------------------------------------------------------------- customers: orders, accounts, promises

# Planning's copy of every sales order (event-carried state from `salesops.orders`): the newest version wins.
# `tier` is the account's tier as the order event stamped it; planning's own copy of the account comes first.
orders = Table(
    "orders",
    metadata,
    Column("order_id", String(100), primary_key=True),
    Column("account_id", String(100), nullable=False, index=True),
    Column("tier", String(20), nullable=True),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("booked_at", DateTime(timezone=True), nullable=False),
    Column("last_event_id", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The lines of each order's newest version; `open_quantity` is what is still to ship (0 once cancelled).
order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(100), primary_key=True),
    Column("line_id", String(100), primary_key=True),
    Column("sku", String(100), nullable=False),
    Column("quantity", Float, nullable=False),
    Column("shipped_quantity", Float, nullable=False),
    Column("open_quantity", Float, nullable=False),
    Column("requested_on", Date, nullable=False),
    Column("promised_on", Date, nullable=False),
    # A promise check reads one SKU's open lines: only those are indexed.
    Index("ix_order_lines_open_by_sku", "sku", postgresql_where=text("open_quantity > 0")),
)

# Planning's copy of each account's tier (`segment`) from `salesops.accounts`; the highest version wins.
accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(100), primary_key=True),
    Column("name", Text, nullable=False),
    Column("segment", String(20), nullable=False),
    Column("owner_email", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("last_event_id", String(200), nullable=False),
)

# The one allocation policy: the share of each week's receipts protected per tier, and the release window.
allocation_policy = Table(
    "allocation_policy",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default="true"),
    Column("reserve_pct", JSONB, nullable=False),
    Column("release_days", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("singleton", name="allocation_policy_one_row"),
)

# The booked lines the latest review of their SKU found at risk, as last published.
promises_at_risk = Table(
    "promises_at_risk",
    metadata,
    Column("order_id", String(100), primary_key=True),
    Column("line_id", String(100), primary_key=True),
    Column("sku", String(100), nullable=False, index=True),
    Column("account_id", String(100), nullable=False),
    Column("tier", String(20), nullable=False),
    Column("promised_on", Date, nullable=False),
    Column("quantity", Float, nullable=False),
    Column("quantity_short", Float, nullable=False),
    Column("new_earliest_on", Date, nullable=True),
    Column("plan_version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
