"""Each webhook delivery keeps the W3C `traceparent` of the work that changed its alert, so every attempt is a
span of that trace and the receiver gets the `traceparent` header to continue it.

Deliveries queued before this revision have none and are sent without one.

Revision ID: 0010_webhook_traceparent
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_webhook_traceparent"
down_revision = "0009_change_log_order"
SCHEMA = "returns"


def upgrade() -> None:
    op.add_column("webhook_deliveries", sa.Column("traceparent", sa.String(55), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "traceparent", schema=SCHEMA)
