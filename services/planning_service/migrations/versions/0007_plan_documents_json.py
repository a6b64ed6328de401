"""A plan's weeks and a revision's week changes are kept as `json` (the text as written) rather than `jsonb`:
both are written whole and read back whole, never searched in SQL. A full re-plan writes about 4 KB of weeks
and, for a first plan, 14 KB of changes per SKU, which `jsonb` would parse and rebuild on the server, and it
reads the stored weeks back as text, which `jsonb` would print again.

Revision ID: 0007_plan_documents_json
"""

from alembic import op

revision = "0007_plan_documents_json"
down_revision = "0006_fit_leases"
SCHEMA = "planning"
COLUMNS = (("plans", "weeks"), ("plan_revisions", "changes"))


def upgrade() -> None:
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {SCHEMA}.{table} ALTER COLUMN {column} TYPE json USING {column}::json")


def downgrade() -> None:
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {SCHEMA}.{table} ALTER COLUMN {column} TYPE jsonb USING {column}::jsonb")
