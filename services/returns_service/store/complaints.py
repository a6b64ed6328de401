"""A complaint on the driver (`shared.db.driver_connection`). One statement stores it with its account's recount
mark and its event and reads its account (`ComplaintsByDriver.create_complaint_announced`); a complaint that may be
critical (`domain.may_be_critical`) runs in a transaction (`complaint_transaction`) whose next statement, when
the rule finds it critical, raises its alert with its change, its webhook deliveries and its event
(`AlertsByDriver`). Any other complaint is that first statement alone, a transaction of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from services.returns_service import tables
from services.returns_service.domain import Account, AlertType, RecordComplaint, Segment
from services.returns_service.store.alerts import AlertRecord, AlertsByDriver, EventBuffer, driver_transaction
from services.returns_service.store.records import COMPLAINT_COLUMNS, Recorded, event_values, insert_marking
from shared.idempotency import DriverInsertOnce, create_once_by_driver, stored_once_by_driver
from shared.outbox import EncodedEvent

# The complaint, created once with its account's mark and its event, and with its account when it is created.
_INSERT_COMPLAINT_ANNOUNCED = DriverInsertOnce.of(
    insert_marking(tables.complaints, "complaint_id", COMPLAINT_COLUMNS, with_account=True, announced=True)
)


def _announced_values(command: RecordComplaint, event: EncodedEvent) -> dict[str, Any]:
    """A complaint's values with those of the event that announces it, as the driver's insert binds them."""
    return {
        "complaint_id": command.complaint_id,
        "account_id": command.account_id,
        "sku": command.sku,
        "severity": command.severity.value,
        "received_on": command.received_on,
        **event_values(event),
    }


async def stored_complaint(connection: Any, command: RecordComplaint) -> Recorded | None:
    """The complaint stored under the command's id from its very body, read on the driver without writing anything
    (None: none is); another body under its id is a 409."""
    row = await stored_once_by_driver(
        connection, _INSERT_COMPLAINT_ANNOUNCED, ident=command.complaint_id, body=command.body, what="complaint"
    )
    return None if row is None else Recorded(body=row["body"], created_at=row["created_at"])


class ComplaintsByDriver(AlertsByDriver):
    """The store of a complaint on a driver's connection (`handlers.record_complaint`): the complaint's statement,
    and the raise of its alert as `AlertsByDriver` writes it (in `complaint_transaction`)."""

    async def create_complaint_announced(self, command: RecordComplaint, event: EncodedEvent) -> tuple[Recorded, bool]:
        """The stored complaint and whether it was created now (then with its event, and with its account as
        registered: None when it is not); the same id with another body is a 409."""
        row, created = await create_once_by_driver(
            self.connection,
            _INSERT_COMPLAINT_ANNOUNCED,
            values=_announced_values(command, event),
            body=command.body,
            what="complaint",
        )
        if not created:
            return Recorded(body=row["body"], created_at=row["created_at"]), False
        name = row["account_name"]
        account = (
            Account(command.account_id, name, Segment(row["account_segment"]), row["account_owner_email"])
            if name is not None
            else None
        )
        return Recorded(body=row["body"], created_at=row["created_at"], account=account), True

    async def open_alert_for(self, alert_type: AlertType, subject: str) -> AlertRecord | None:
        raise RuntimeError(f"a new complaint has no open alert to read ({alert_type.value} of '{subject}')")

    async def resolved_fingerprint(self, alert_type: AlertType, subject: str) -> str | None:
        raise RuntimeError(f"a new complaint has no resolved alert to read ({alert_type.value} of '{subject}')")


@asynccontextmanager
async def complaint_transaction(connection: Any, events: EventBuffer) -> AsyncIterator[ComplaintsByDriver]:
    """A transaction on a driver's connection for a complaint that may be critical (`driver_transaction`): no lock
    to take, the complaint is its alert's subject and is created by the transaction itself."""
    async with driver_transaction(connection, events):
        yield ComplaintsByDriver(connection, events)
