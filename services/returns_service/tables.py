"""Tables of the returns service (schema `returns`)."""

from sqlalchemy import MetaData

from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = MetaData(schema="returns")

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
