"""Tables of the returns service (schema `returns`)."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Sequence,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = MetaData(schema="returns")

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    ]


accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("segment", String(20), nullable=False),
    Column("owner_email", String(320), nullable=True),
    # Grows by one with every change; each change is published as salesops.account.changed.v1 at it.
    Column("version", Integer, nullable=False, server_default=text("1")),
    *_timestamps(),
)

returns = Table(
    "returns",
    metadata,
    Column("return_id", String(100), primary_key=True),
    Column("sku", String(100), nullable=False),
    Column("account_id", String(100), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("reason", String(30), nullable=False),
    Column("condition", String(20), nullable=False),
    Column("returned_on", Date, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_returns_sku_day", "sku", "returned_on"),
    Index("ix_returns_account", "account_id"),
)

complaints = Table(
    "complaints",
    metadata,
    Column("complaint_id", String(100), primary_key=True),
    Column("account_id", String(100), nullable=False),
    Column("sku", String(100), nullable=True),
    Column("severity", String(20), nullable=False),
    Column("received_on", Date, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_complaints_account", "account_id"),
)

# Daily totals across warehouses, as the fulfillment service last reported them (the surge denominator).
daily_volumes = Table(
    "daily_volumes",
    metadata,
    Column("sku", String(100), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("units_ordered", Integer, nullable=False),
    Column("units_shipped", Integer, nullable=False),
    Column("units_backordered", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The service's own copy of promotions, from salesops.promotions (event-carried state).
promotions = Table(
    "promotions",
    metadata,
    Column("promotion_id", String(100), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("skus", ARRAY(String(100)), nullable=False),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("account_segments", ARRAY(String(50)), nullable=False),
    Column("status", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Per booked order line, the newest promise event applied: an older one (a lower plan version of the same SKU)
# arriving late changes nothing.
promise_lines = Table(
    "promise_lines",
    metadata,
    Column("order_id", String(100), primary_key=True),
    Column("line_id", String(100), primary_key=True),
    Column("sku", String(100), nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("at_risk", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(40), primary_key=True),
    Column("type", String(30), nullable=False),
    # The SKU, the complaint id or the order line (`<order_id>/<line_id>`).
    Column("subject", String(250), nullable=False),
    Column("status", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("sku", String(100), nullable=True),
    Column("account_ids", ARRAY(String(100)), nullable=False),
    Column("accounts", JSONB, nullable=False),
    Column("details", JSONB, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("revision", Integer, nullable=False),
    # Who (the API key's name) acknowledged or resolved the alert, and when; a resolution without a name is the
    # system's (the cause went away).
    Column("acknowledged_by", String(200), nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("resolved_by", String(200), nullable=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    *_timestamps(),
    # One open alert per (type, subject): concurrent evidence updates it instead of raising another.
    Index("ux_alerts_open", "type", "subject", unique=True, postgresql_where=text("status = 'open'")),
    Index("ix_alerts_updated", "updated_at", "alert_id"),
)

# Every alert change. `change_id` is given when the change is written (the webhook deliveries it queued name it);
# `seq`, the SSE stream's resumable number (`id` = seq), is given after the change committed, by a short
# numbering step that holds the one row of `alert_change_counter`, so numbers become visible in order.
alert_changes = Table(
    "alert_changes",
    metadata,
    Column("change_id", BigInteger, Identity(always=False), primary_key=True),
    Column("seq", BigInteger, nullable=True),
    Column("alert_id", String(40), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("type", String(30), nullable=False),
    Column("sku", String(100), nullable=True),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ux_alert_changes_seq", "seq", unique=True),
    Index("ix_alert_changes_unnumbered", "change_id", postgresql_where=text("seq IS NULL")),
)

# One row: the last number given to an alert change. Numbering steps take it in turn (row lock to their commit).
alert_change_counter = Table(
    "alert_change_counter",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    CheckConstraint("id = 1", name="ck_alert_change_counter_one_row"),
)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("endpoint_id", String(40), primary_key=True),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(String(60)), nullable=False),
    Column("secret", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("failing_since", DateTime(timezone=True), nullable=True),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    Column("disabled_reason", Text, nullable=True),
    Column("created_by", String(200), nullable=True),  # the owning API key's name
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_endpoints_owner", "created_by", "created_at", "endpoint_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", BigInteger, Identity(always=False), primary_key=True),
    Column(
        "endpoint_id",
        String(40),
        ForeignKey("returns.webhook_endpoints.endpoint_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("message_id", String(60), nullable=False),
    Column("alert_id", String(40), nullable=False),
    Column("change_id", BigInteger, nullable=False),  # the alert change it delivers
    Column("event_type", String(60), nullable=False),
    Column("body", Text, nullable=False),  # the exact bytes sent on every attempt
    # W3C trace context of the work that changed the alert: each attempt is a span of that trace.
    Column("traceparent", String(55), nullable=True),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index(
        "ix_deliveries_endpoint_due",
        "endpoint_id",
        "next_attempt_at",
        "delivery_id",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_deliveries_endpoint", "endpoint_id", "delivery_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("attempt_id", BigInteger, Identity(always=False), primary_key=True),
    Column(
        "delivery_id",
        BigInteger,
        ForeignKey("returns.webhook_deliveries.delivery_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Float, nullable=False),
    Index("ix_attempts_delivery", "delivery_id", "attempt"),
)

# ---------------------------------------------------------------- cost-to-serve

# The newest version of each sales order, from salesops.orders (event-carried state; lines as JSON).
cost_orders = Table(
    "cost_orders",
    metadata,
    Column("order_id", String(100), primary_key=True),
    Column("account_id", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("ordered_on", Date, nullable=False),
    Column("rush", Boolean, nullable=False),
    Column("status", String(20), nullable=False),
    Column("lines", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_cost_orders_account", "account_id"),
)

# Every delivery (drop) of a sales order, from salesops.shipment.recorded.v1; a shipment never changes.
cost_shipments = Table(
    "cost_shipments",
    metadata,
    Column("shipment_id", String(100), primary_key=True),
    Column("order_id", String(100), nullable=False),
    Column("shipped_on", Date, nullable=False),
    Column("lines", JSONB, nullable=False),
    Index("ix_cost_shipments_order", "order_id"),
)

# The rate-free ledger: per account and month, the driver counts and the goods' money (priced when read).
cost_ledger = Table(
    "cost_ledger",
    metadata,
    Column("account_id", String(100), primary_key=True),
    Column("month", Date, primary_key=True),
    Column("orders", Integer, nullable=False),
    Column("order_lines", Integer, nullable=False),
    Column("units_picked", Float, nullable=False),
    Column("shipments", Integer, nullable=False),
    Column("backordered_lines", Integer, nullable=False),
    Column("rush_orders", Integer, nullable=False),
    Column("return_lines", Integer, nullable=False),
    Column("complaints", Integer, nullable=False),
    Column("revenue", Float, nullable=False),
    Column("cost_of_goods", Float, nullable=False),
    Column("returned_units", Float, nullable=False),
    Column("written_off_units", Float, nullable=False),
    Column("written_off_cost", Float, nullable=False),
    Column("unpriced_units", Float, nullable=False),
    Index("ix_cost_ledger_month", "month"),
)

# Per account: the day its ledger was counted on (backorders are judged on it) and when its cost alerts were
# last evaluated, so the refresh knows which accounts a new day or new rates leave behind.
cost_accounts = Table(
    "cost_accounts",
    metadata,
    Column("account_id", String(100), primary_key=True),
    Column("counted_as_of", Date, nullable=False),
    Column("evaluated_at", DateTime(timezone=True), nullable=True),
    Index("ix_cost_accounts_counted", "counted_as_of"),
)

# Accounts whose ledger must be recounted: a return or a complaint marks its account in the statement that stores
# it, and the recount task (`cost_recount`) recounts marked accounts shortly after. `due_seq` grows with every new
# mark, so a recount removes the mark only when no mark came in since it read the account's facts; `claimed_until`
# is the lease of the replica recounting it.
cost_recount_seq = Sequence("cost_recount_seq", schema=metadata.schema, metadata=metadata)
cost_recounts = Table(
    "cost_recounts",
    metadata,
    Column("account_id", String(100), primary_key=True),
    Column("due_seq", BigInteger, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Index("ix_cost_recounts_due", "due_at"),
)

# The activity rates (one row): absent until the first PUT /v1/cost-rates, the documented defaults apply.
cost_rates = Table(
    "cost_rates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("rates", JSONB, nullable=False),
    Column("updated_by", String(200), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
