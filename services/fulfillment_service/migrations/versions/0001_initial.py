"""Outbox and inbox.

Revision ID: 0001
"""

from alembic import op

from shared.migrations_ops import create_inbox, create_outbox

revision = "0001"
down_revision = None
SCHEMA = "fulfillment"


def upgrade() -> None:
    create_outbox(SCHEMA)
    create_inbox(SCHEMA)


def downgrade() -> None:
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("inbox", schema=SCHEMA)
