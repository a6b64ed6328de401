"""Leases on the SKUs a fitter is fitting: with several replicas, each fits chunks no other replica holds, so a
rollover's fits are shared out instead of made once per replica. A lease lapses by itself (a replica that died
mid-fit leaves its SKUs to the others).

Revision ID: 0006_fit_leases
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_fit_leases"
down_revision = "0005_baseline_models"
SCHEMA = "planning"


def upgrade() -> None:
    op.create_table(
        "fit_leases",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("fit_leases", schema=SCHEMA)
