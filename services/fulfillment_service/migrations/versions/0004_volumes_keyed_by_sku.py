"""Reported volumes keyed by (sku, day, warehouse_id): the primary key serves what the (sku, day) index served
(a SKU's days across warehouses, listings in that order), and that index goes, so a row has one index entry.

Revision ID: 0004_volumes_keyed_by_sku
"""

from alembic import op

revision = "0004_volumes_keyed_by_sku"
down_revision = "0003_outbox_parking"
SCHEMA = "fulfillment"


def upgrade() -> None:
    op.execute(
        f"ALTER TABLE {SCHEMA}.volumes DROP CONSTRAINT volumes_pkey,"
        " ADD CONSTRAINT volumes_pkey PRIMARY KEY (sku, day, warehouse_id)"
    )
    op.drop_index("ix_volumes_sku_day", table_name="volumes", schema=SCHEMA)


def downgrade() -> None:
    op.create_index("ix_volumes_sku_day", "volumes", ["sku", "day"], schema=SCHEMA)
    op.execute(
        f"ALTER TABLE {SCHEMA}.volumes DROP CONSTRAINT volumes_pkey,"
        " ADD CONSTRAINT volumes_pkey PRIMARY KEY (warehouse_id, sku, day)"
    )
