"""The returns consumer is named `returns-service`, as every service's is `<service>-service`: its inbox rows
follow, so events it already handled stay handled once under the new name (the new Kafka group starts from the
earliest offsets and the inbox skips them).

Revision ID: 0006_consumer_group_name
"""

from alembic import op

revision = "0006_consumer_group_name"
down_revision = "0005_outbox_parking"
SCHEMA = "returns"


def upgrade() -> None:
    op.execute(f"UPDATE {SCHEMA}.inbox SET consumer = 'returns-service' WHERE consumer = 'returns'")


def downgrade() -> None:
    op.execute(f"UPDATE {SCHEMA}.inbox SET consumer = 'returns' WHERE consumer = 'returns-service'")
