"""A quality return on the driver (`shared.db.driver_connection`): one transaction of few round trips. The BEGIN
carries the SKU's surge lock; one statement then stores the return with its account's recount mark and its event
and reads what the surge rule reads and the SKU's open surge alert (`QualityReturns.create_return_evaluated`); when
no alert is open and the rule finds a surge, one more reads whether a person resolved its last alert; the alert's
raise or revision writes its change, its webhook deliveries and its event in one more (`AlertsByDriver`); then the
COMMIT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from sqlalchemy import Date, String, bindparam

from services.returns_service import tables
from services.returns_service.domain import (
    AlertType,
    RecordReturn,
)
from services.returns_service.store.alerts import (
    OPEN,
    AlertRecord,
    AlertsByDriver,
    EventBuffer,
    alert_of,
    driver_transaction,
    subject_lock_key,
)
from services.returns_service.store.records import (
    RETURN_COLUMNS,
    SURGE_COLUMNS,
    Recorded,
    SurgeInputs,
    announced_values,
    insert_marking,
    quality_returns_in,
    surge_inputs_of,
)
from shared.idempotency import DriverInsertOnce, create_once_by_driver
from shared.outbox import EncodedEvent

returns = tables.returns
alerts = tables.alerts

# The return, created once with its account's mark and its event (`insert_marking`), and, when it is created, what
# `surge_inputs` reads (the new return included: the statement's own insert is not in the table it reads) and the
# SKU's open surge alert locked to the commit. The surge lock is held already (taken by an earlier statement), so
# what this statement sees is what every earlier holder committed. A person's acknowledgement or resolution does
# not take that lock: the open alert's row lock waits for it, and a resolution committed meanwhile drops the alert
# from the statement's answer while the rest of the statement still reads from before it; so the evidence of a
# resolved alert is read by a statement of its own (`QualityReturns.resolved_fingerprint`).
_INSERT_QUALITY_RETURN = DriverInsertOnce.of(
    insert_marking(
        returns,
        "return_id",
        RETURN_COLUMNS,
        announced=True,
        then=f"""
        , quality AS (
            {quality_returns_in(returns.fullname)}
            UNION ALL
            {quality_returns_in("created")}
        ), open_alert AS (
            SELECT * FROM {alerts.fullname}
            WHERE type = :alert_type AND subject = :sku AND status = '{OPEN}'
            FOR UPDATE
        )""",
        joined=" LEFT JOIN open_alert o ON true",
        joined_columns={
            **SURGE_COLUMNS,
            **{f"open_{column.name}": (f"o.{column.name}", column.type) for column in alerts.c},
        },
        then_params=(
            bindparam("start", type_=Date),
            bindparam("end", type_=Date),
            bindparam("alert_type", type_=String),
        ),
    )
)


class QualityReturns(AlertsByDriver):
    """The store of one quality return's transaction (`quality_return`): what `handlers.record_quality_return`
    reads comes with the return's insert; the alert's writes are `AlertsByDriver`'s."""

    def __init__(self, connection: Any, events: EventBuffer) -> None:
        super().__init__(connection, events)
        self._read: tuple[str, date, date] | None = None
        self._inputs = SurgeInputs([], 0.0, {}, [])
        self._open: AlertRecord | None = None

    async def create_return_evaluated(
        self, command: RecordReturn, event: EncodedEvent, window: tuple[date, date]
    ) -> tuple[Recorded, bool]:
        """The stored return and whether it was created now (then with its event, and with the surge rule's inputs
        for `window` read); the same id with another body is a 409."""
        start, end = window
        values = {
            **announced_values(command, event),
            "start": start,
            "end": end,
            "alert_type": AlertType.RETURN_SURGE.value,
        }
        row, created = await create_once_by_driver(
            self.connection, _INSERT_QUALITY_RETURN, values=values, body=command.body, what="return"
        )
        if created:
            self._read = (command.sku, start, end)
            self._inputs = surge_inputs_of(
                command.sku, row["surge_returns"], row["surge_shipped"], row["surge_accounts"], row["surge_promotions"]
            )
            self._open = alert_of(row, "open_") if row["open_alert_id"] is not None else None
        return Recorded(body=row["body"], created_at=row["created_at"]), created

    def _check(self, alert_type: AlertType, subject: str) -> None:
        if self._read is None or alert_type is not AlertType.RETURN_SURGE or subject != self._read[0]:
            raise RuntimeError(f"the {alert_type.value} alert of '{subject}' was not read with the return")

    async def surge_inputs(self, sku: str, start: date, end: date) -> SurgeInputs:
        if self._read != (sku, start, end):
            raise RuntimeError(f"the surge inputs of '{sku}' from {start} to {end} were not read with the return")
        return self._inputs

    async def lock_subject(self, alert_type: AlertType, subject: str) -> None:
        """Nothing to take: the SKU's surge lock is the transaction's first (`quality_return`)."""
        self._check(alert_type, subject)

    async def open_alert_for(self, alert_type: AlertType, subject: str) -> AlertRecord | None:
        """The SKU's open surge alert, locked to the commit (the subject's lock is the transaction's first)."""
        self._check(alert_type, subject)
        return self._open

    async def resolved_fingerprint(self, alert_type: AlertType, subject: str) -> str | None:
        """The evidence of the SKU's latest surge alert if a person resolved it (None otherwise), read by a statement
        of its own (asked only when no alert is open and the rule found a surge): it sees every resolution
        committed before it, the one the return's statement waited for included."""
        self._check(alert_type, subject)
        return await super().resolved_fingerprint(alert_type, subject)


@asynccontextmanager
async def quality_return(connection: Any, events: EventBuffer, sku: str) -> AsyncIterator[QualityReturns]:
    """A transaction on a driver's connection for a quality return of `sku` (`driver_transaction`): its BEGIN
    carries the SKU's surge lock (the lock `AlertsStore.open_alert_for` takes) in the same round trip."""
    key = int(subject_lock_key(AlertType.RETURN_SURGE, sku))
    # No parameter: the simple protocol takes both statements at once (the key is an integer).
    async with driver_transaction(connection, events, f"BEGIN; SELECT pg_advisory_xact_lock({key})"):
        yield QualityReturns(connection, events)
