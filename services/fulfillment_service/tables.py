"""Tables of the fulfillment service (schema `fulfillment`)."""

from sqlalchemy import MetaData

from shared.inbox import inbox_table
from shared.outbox import outbox_table

metadata = MetaData(schema="fulfillment")

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
