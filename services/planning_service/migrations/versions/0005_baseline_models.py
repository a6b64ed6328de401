"""Fitted baseline models: per SKU the model's kind and parameters, the week it was fitted for and a digest
of the history it saw.

Revision ID: 0005_baseline_models
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_baseline_models"
down_revision = "0004_promising"
SCHEMA = "planning"


def upgrade() -> None:
    op.create_table(
        "baseline_models",
        sa.Column("sku", sa.String(100), primary_key=True),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("model", postgresql.JSONB, nullable=True),
        sa.Column("origin", sa.Date, nullable=False),
        sa.Column("history_digest", postgresql.JSONB, nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("history_changes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("checked_changes", sa.Integer, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_baseline_models_refit",
        "baseline_models",
        ["sku"],
        schema=SCHEMA,
        postgresql_where=sa.text("history_changes > checked_changes"),
    )


def downgrade() -> None:
    op.drop_index("ix_baseline_models_refit", table_name="baseline_models", schema=SCHEMA)
    op.drop_table("baseline_models", schema=SCHEMA)
