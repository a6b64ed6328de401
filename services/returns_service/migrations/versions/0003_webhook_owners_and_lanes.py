"""Webhook endpoints are listed per owning key; due deliveries are found per endpoint.

Endpoints registered before ownership was enforced keep `created_by` as recorded (NULL if it never was);
an endpoint without an owner is reached only with `webhooks:admin`.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
SCHEMA = "returns"


def upgrade() -> None:
    op.create_index(
        "ix_endpoints_owner", "webhook_endpoints", ["created_by", "created_at", "endpoint_id"], schema=SCHEMA
    )
    # The dispatcher takes each endpoint's oldest due deliveries (fair shares); a due-time index across all
    # endpoints would make it read every other endpoint's backlog.
    op.create_index(
        "ix_deliveries_endpoint_due",
        "webhook_deliveries",
        ["endpoint_id", "next_attempt_at", "delivery_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_deliveries_due", table_name="webhook_deliveries", schema=SCHEMA)


def downgrade() -> None:
    op.create_index(
        "ix_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index("ix_deliveries_endpoint_due", table_name="webhook_deliveries", schema=SCHEMA)
    op.drop_index("ix_endpoints_owner", table_name="webhook_endpoints", schema=SCHEMA)
