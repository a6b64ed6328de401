"""Outbox rows the broker refuses are parked instead of retried forever; the relay remembers the broker it
published to, so a broker that came back empty gets the outbox again.

Revision ID: 0003_outbox_parking
"""

from shared.migrations_ops import add_outbox_parking_and_relay_state, drop_outbox_parking_and_relay_state

revision = "0003_outbox_parking"
down_revision = "0002"
SCHEMA = "promotion"


def upgrade() -> None:
    add_outbox_parking_and_relay_state(SCHEMA)


def downgrade() -> None:
    drop_outbox_parking_and_relay_state(SCHEMA)
