"""A return or a complaint no longer recounts its account's ledger in the request: it marks the account in
`cost_recounts` (in the statement that stores it) and the recount task recounts marked accounts shortly after.

Revision ID: 0011_cost_recounts
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_cost_recounts"
down_revision = "0010_webhook_traceparent"
SCHEMA = "returns"


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("cost_recount_seq", schema=SCHEMA)))
    op.create_table(
        "cost_recounts",
        sa.Column("account_id", sa.String(100), primary_key=True),
        sa.Column("due_seq", sa.BigInteger, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.create_index("ix_cost_recounts_due", "cost_recounts", ["due_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_cost_recounts_due", table_name="cost_recounts", schema=SCHEMA)
    op.drop_table("cost_recounts", schema=SCHEMA)
    op.execute(sa.schema.DropSequence(sa.Sequence("cost_recount_seq", schema=SCHEMA)))
