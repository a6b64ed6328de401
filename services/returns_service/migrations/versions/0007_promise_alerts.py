"""Promise-at-risk alerts and published accounts.

- `promise_lines`: per booked order line, the newest promise event applied (its SKU, plan version and whether
  it left the line at risk), so an older event arriving late never reopens or rewinds the line's alert.
- `alerts.subject` grows to hold an order line (`<order_id>/<line_id>`, each up to 100 characters).
- `accounts.version`: every change of an account publishes `salesops.account.changed.v1` at the next version.
  Accounts stored before this revision start at version 1 and are announced once, here, through the outbox,
  so the services that keep a copy of the tiers learn them without waiting for the next change.

Revision ID: 0007_promise_alerts
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from shared.events import AccountChangedData, EventType, Topic, new_event

revision = "0007_promise_alerts"
down_revision = "0006_consumer_group_name"
SCHEMA = "returns"
SOURCE = "salesops/returns-service"


def upgrade() -> None:
    op.create_table(
        "promise_lines",
        sa.Column("order_id", sa.String(100), primary_key=True),
        sa.Column("line_id", sa.String(100), primary_key=True),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("plan_version", sa.Integer, nullable=False),
        sa.Column("at_risk", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.alter_column("alerts", "subject", type_=sa.String(250), existing_nullable=False, schema=SCHEMA)
    op.add_column(
        "accounts", sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")), schema=SCHEMA
    )
    _announce_existing_accounts()


def _announce_existing_accounts() -> None:
    """One `account.changed.v1` at version 1 per stored account, written to the outbox as the relay expects."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(f"SELECT account_id, name, segment, owner_email FROM {SCHEMA}.accounts ORDER BY account_id")
    ).all()
    now = datetime.now(UTC)
    for row in rows:
        data = AccountChangedData(
            account_id=row.account_id,
            name=row.name,
            segment=row.segment,
            owner_email=row.owner_email,
            version=1,
            changed_at=now,
        )
        event = new_event(EventType.ACCOUNT_CHANGED, source=SOURCE, subject=row.account_id, data=data)
        bind.execute(
            sa.text(
                f"INSERT INTO {SCHEMA}.outbox (event_id, event_type, topic, key, payload)"
                " VALUES (:event_id, :event_type, :topic, :key, :payload)"
            ),
            {
                "event_id": event.id,
                "event_type": event.type,
                "topic": Topic.ACCOUNTS.value,
                "key": row.account_id,
                "payload": event.to_json(),
            },
        )


def downgrade() -> None:
    op.drop_column("accounts", "version", schema=SCHEMA)
    op.alter_column("alerts", "subject", type_=sa.String(100), existing_nullable=False, schema=SCHEMA)
    op.drop_table("promise_lines", schema=SCHEMA)
