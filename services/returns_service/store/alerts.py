"""SQL of sales alerts and their change log: one open alert per (type, subject), and every change recorded
once for the SSE stream (with a NOTIFY; numbered after commit, see `changes`) and the webhook deliveries, in the
caller's transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
    and_,
    any_,
    bindparam,
    desc,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from services.returns_service import tables
from services.returns_service.domain import AlertContent, AlertState, AlertType, Priority
from services.returns_service.store.changes import PENDING_CHANNEL
from services.returns_service.store.webhooks import DELIVERY_PARAMS, deliveries_of, delivery_values
from shared.db import DriverStatement
from shared.events import CloudEvent, EventData, EventType, new_event, topic_of
from shared.outbox import EncodedEvent, advisory_lock_key, encode_event

alerts = tables.alerts
alert_changes = tables.alert_changes

OPEN = "open"
RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertRecord:
    alert_id: str
    type: str
    subject: str
    status: str
    priority: str
    sku: str | None
    account_ids: list[str]
    accounts: list[dict[str, Any]]
    details: dict[str, Any]
    fingerprint: str
    revision: int
    created_at: datetime
    updated_at: datetime
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class NewChange:
    """An alert change to record, as every channel carries it: the alert's `document` (the change log's payload),
    the event type it was published as, the webhook `message`, when (`at`, the message's timestamp) and the trace
    of the work that made it (the deliveries continue it)."""

    document: Mapping[str, Any]
    event_type: str
    message: Mapping[str, Any]
    at: datetime
    traceparent: str | None = None


@dataclass(frozen=True)
class AlertFilter:
    since: datetime | None = None
    sku: str | None = None
    account_id: str | None = None
    alert_type: AlertType | None = None
    status: str | None = None
    state: AlertState | None = None
    # A service tier: alerts involving an account of it, or (capacity conflicts) a promotion targeting it.
    segment: str | None = None


_ALERT_INSERTED = (
    "alert_id",
    "type",
    "subject",
    "status",
    "priority",
    "sku",
    "account_ids",
    "accounts",
    "details",
    "fingerprint",
    "revision",
    "created_at",
    "updated_at",
)
_CHANGE_INSERTED = ("revision", "event_type", "type", "sku", "payload", "created_at")

_ALERT_REVISED = ("priority", "sku", "account_ids", "accounts", "details", "fingerprint", "revision", "updated_at")


def _with_change(written: str, names: tuple[str, ...], *, announced: bool = False) -> TextClause:
    """`written` (a statement returning the `alert_id` of one alert: its insert or update, or just the id) with the
    alert's change (announced to the numbering step and the dispatchers, delivered at the commit) and the change's
    webhook deliveries (`deliveries_of`): one round trip, returning the change's id (no row when `written` wrote
    nothing). `names` are the parameters of `written`, typed as the alert's columns.

    No lock here: the change's stream number (`seq`) is given after the commit, in a short numbering step
    (`ChangeLog.number_pending`), so writers of changes do not queue behind each other. The NOTIFY rides on the
    statement (PostgreSQL delivers it at commit) and wakes the numbering step and the webhook dispatchers.

    `announced`: the statement also writes events already encoded to the outbox, in their order (the arrays
    `event_ids`, `event_types`, `event_topics`, `event_keys`, `event_payloads`), for work on the driver that has no
    unit of work to write them (`AlertsByDriver`)."""
    outboxed = (
        f"""
        ), announced AS (
            INSERT INTO {tables.outbox.fullname} (event_id, event_type, topic, key, payload)
            SELECT event_id, event_type, topic, key, payload
            FROM unnest(cast(:event_ids AS text[]), cast(:event_types AS text[]), cast(:event_topics AS text[]),
                        cast(:event_keys AS text[]), cast(:event_payloads AS bytea[]))
                 WITH ORDINALITY AS event(event_id, event_type, topic, key, payload, position)
            ORDER BY position"""
        if announced
        else ""
    )
    return text(
        f"""
        WITH written AS (
            {written}{outboxed}
        ), changed AS (
            INSERT INTO {alert_changes.fullname} (alert_id, {", ".join(_CHANGE_INSERTED)})
            SELECT written.alert_id, {", ".join(f":change_{name}" for name in _CHANGE_INSERTED)} FROM written
            RETURNING change_id, alert_id
        ), queued AS ({deliveries_of("changed")})
        SELECT changed.change_id, pg_notify('{PENDING_CHANNEL}', '') FROM changed
        """
    ).bindparams(
        *(bindparam(name, type_=alerts.c[name].type) for name in names),
        *(bindparam(f"change_{name}", type_=alert_changes.c[name].type) for name in _CHANGE_INSERTED),
        *DELIVERY_PARAMS,
    )


# A new alert with its first change.
_RAISE_ALERT = _with_change(
    f"INSERT INTO {alerts.fullname} ({', '.join(_ALERT_INSERTED)}) "
    f"VALUES ({', '.join(f':{name}' for name in _ALERT_INSERTED)}) RETURNING alert_id",
    _ALERT_INSERTED,
)
# An open alert's next revision with its change; written only if the alert is still at the revision before.
_REVISE_ALERT = _with_change(
    f"UPDATE {alerts.fullname} SET {', '.join(f'{name} = :{name}' for name in _ALERT_REVISED)} "
    f"WHERE alert_id = :alert_id AND revision = :revision - 1 AND status = '{OPEN}' RETURNING alert_id",
    (*_ALERT_REVISED, "alert_id"),
)
# A change of an alert already written (acknowledged or resolved).
_RECORD_CHANGE = _with_change("SELECT :alert_id AS alert_id", ("alert_id",))
# The same two writes for the driver, each with the events of the work (`AlertsByDriver`).
_RAISE_ALERT_ANNOUNCED = DriverStatement.of(
    _with_change(
        f"INSERT INTO {alerts.fullname} ({', '.join(_ALERT_INSERTED)}) "
        f"VALUES ({', '.join(f':{name}' for name in _ALERT_INSERTED)}) RETURNING alert_id",
        _ALERT_INSERTED,
        announced=True,
    )
)
_REVISE_ALERT_ANNOUNCED = DriverStatement.of(
    _with_change(
        f"UPDATE {alerts.fullname} SET {', '.join(f'{name} = :{name}' for name in _ALERT_REVISED)} "
        f"WHERE alert_id = :alert_id AND revision = :revision - 1 AND status = '{OPEN}' RETURNING alert_id",
        (*_ALERT_REVISED, "alert_id"),
        announced=True,
    )
)
# A change of an alert already written, for the driver, with the events of the work (`AlertsByDriver`).
_RECORD_CHANGE_ANNOUNCED = DriverStatement.of(
    _with_change("SELECT :alert_id AS alert_id", ("alert_id",), announced=True)
)
# What the driver takes as JSON text (the engine's codecs encode no Python value).
_JSON_PARAMS = ("accounts", "details", "change_payload")

# The alert resolved as its next revision (`close_alert`): `:closed_by` names the person (null: the cause went
# away), `:closed_details` are its details from now on.
_CLOSE_ALERT = (
    update(alerts)
    .where(alerts.c.alert_id == bindparam("closed_id", type_=alerts.c.alert_id.type))
    .values(
        status=RESOLVED,
        revision=alerts.c.revision + 1,
        updated_at=bindparam("closed_at", type_=alerts.c.updated_at.type),
        resolved_at=bindparam("closed_at", type_=alerts.c.resolved_at.type),
        resolved_by=bindparam("closed_by", type_=alerts.c.resolved_by.type),
        details=bindparam("closed_details", type_=alerts.c.details.type),
    )
    .returning(*alerts.c)
)
_CLOSE_ALERT_BY_DRIVER = DriverStatement.of(_CLOSE_ALERT)


# The subject's advisory lock, then its open alert locked to the commit (`open_alert_for`): built once, so a request
# pays neither their construction nor their cache key.
_SUBJECT_LOCK = select(func.pg_advisory_xact_lock(bindparam("key", type_=BigInteger)))
_OPEN_ALERT = (
    select(alerts)
    .where(alerts.c.type == bindparam("type"), alerts.c.subject == bindparam("subject"), alerts.c.status == OPEN)
    .with_for_update()
)


# The evidence of the subject's latest alert and who resolved it (`resolved_fingerprint`).
_LATEST_ALERT = (
    select(alerts.c.fingerprint, alerts.c.resolved_by)
    .where(alerts.c.type == bindparam("type"), alerts.c.subject == bindparam("subject"))
    .order_by(desc(alerts.c.updated_at))
    .limit(1)
)
# The same for the driver (`QualityReturns`).
LATEST_ALERT_BY_DRIVER = DriverStatement.of(_LATEST_ALERT)


def _change_params(alert: Mapping[str, Any], change: NewChange) -> dict[str, Any]:
    """The parameters of a `_with_change` statement: `alert`, those of its written part; the change is the alert's
    document, stamped `change.at`; the deliveries carry its message."""
    document = change.document
    return {
        **alert,
        "change_revision": document["revision"],
        "change_event_type": change.event_type,
        "change_type": document["type"],
        "change_sku": document["sku"],
        "change_payload": dict(document),
        "change_created_at": change.at,
        **delivery_values(change.message, change.traceparent),
    }


def _close_params(alert_id: str, details: Any, by: str | None) -> dict[str, Any]:
    return {"closed_id": alert_id, "closed_at": datetime.now(UTC), "closed_by": by, "closed_details": details}


def _values(alert: AlertRecord, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(alert, name) for name in names}


def _alert(row: Row[Any]) -> AlertRecord:
    return AlertRecord(**{column.name: getattr(row, column.name) for column in alerts.c})


def subject_lock_key(alert_type: AlertType, subject: str) -> int:
    """The advisory lock of (type, subject): whoever may raise or revise its alert holds it to the commit."""
    return advisory_lock_key(f"returns-alert:{alert_type.value}:{subject}")


def new_alert(
    alert_type: AlertType, subject: str, content: AlertContent, *, priority: Priority, fingerprint: str
) -> AlertRecord:
    """An alert about to be raised (nothing is written here): revision 1, open, stamped now."""
    now = datetime.now(UTC)
    return AlertRecord(
        alert_id=f"alrt_{uuid.uuid4().hex}",
        type=alert_type.value,
        subject=subject,
        status=OPEN,
        revision=1,
        created_at=now,
        updated_at=now,
        priority=priority.value,
        sku=content.sku,
        account_ids=content.account_ids,
        accounts=content.accounts,
        details=content.details,
        fingerprint=fingerprint,
    )


def revised_alert(current: AlertRecord, content: AlertContent, *, priority: Priority, fingerprint: str) -> AlertRecord:
    """The open alert `current` with new content as its next revision (nothing is written here)."""
    return replace(
        current,
        revision=current.revision + 1,
        updated_at=datetime.now(UTC),
        **_content(content, priority, fingerprint),
    )


def alert_of(row: Mapping[str, Any], prefix: str = "") -> AlertRecord:
    """The alert of a driver's row whose alert columns are named `prefix` + column."""
    return AlertRecord(**{column.name: row[prefix + column.name] for column in alerts.c})


class EventBuffer:
    """The publisher of work on the driver, which has no unit of work: each event is encoded and measured as the
    producer will measure it when it is published (`EventTooLarge` before anything more is written), and kept
    for the next statement that writes the work's events (`take`)."""

    def __init__(self, *, source: str, traceparent: str | None, max_bytes: int) -> None:
        self.source = source
        self.traceparent = traceparent
        self.max_bytes = max_bytes
        self.context: dict[str, Any] = {}
        self._pending: list[EncodedEvent] = []
        # How many events were published (the relay is woken once a transaction that wrote some commits).
        self.published = 0

    def publish(self, event_type: EventType, *, key: str, subject: str, data: EventData) -> CloudEvent:
        event = new_event(event_type, source=self.source, subject=subject, data=data, traceparent=self.traceparent)
        self._pending.append(encode_event(event, topic_of(event_type).value, key, max_bytes=self.max_bytes))
        self.published += 1
        return event

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[EncodedEvent]:
        """The events published since the last `take`, in their order."""
        taken, self._pending = self._pending, []
        return taken


@asynccontextmanager
async def driver_transaction(connection: Any, events: EventBuffer, begin: str = "BEGIN") -> AsyncIterator[None]:
    """A transaction on a driver's connection for work that writes the events of `events` with its statements:
    `begin` opens it in one round trip (the BEGIN, with what else it carries in the simple protocol: no
    parameters), COMMIT when the work ends (every event it published written by then), ROLLBACK when it fails. A
    connection left in doubt is the caller's to discard (`driver_connection` does)."""
    try:
        await connection.execute(begin)
        yield
        if events.pending:
            raise RuntimeError("events were published that no statement wrote")
        await connection.execute("COMMIT")
    except Exception:
        if connection.is_in_transaction():
            await connection.execute("ROLLBACK")
        raise


class AlertsByDriver:
    """The raise and the revision of an alert on a driver's connection, in a transaction its caller holds: each
    writes the alert, its change and its webhook deliveries as `AlertsStore` does and, in the same statement, the
    events the work published so far (`EventBuffer.take`), the alert's own event among them."""

    def __init__(self, connection: Any, events: EventBuffer) -> None:
        self.connection = connection
        self.events = events

    def new_alert(
        self, alert_type: AlertType, subject: str, content: AlertContent, *, priority: Priority, fingerprint: str
    ) -> AlertRecord:
        return new_alert(alert_type, subject, content, priority=priority, fingerprint=fingerprint)

    def revised_alert(
        self, current: AlertRecord, content: AlertContent, *, priority: Priority, fingerprint: str
    ) -> AlertRecord:
        return revised_alert(current, content, priority=priority, fingerprint=fingerprint)

    async def raise_alert(self, alert: AlertRecord, change: NewChange) -> int:
        row = await self._write(_RAISE_ALERT_ANNOUNCED, _change_params(_values(alert, _ALERT_INSERTED), change))
        assert row is not None
        return int(row[0])

    async def revise_alert(self, alert: AlertRecord, change: NewChange) -> int:
        params = _change_params(_values(alert, (*_ALERT_REVISED, "alert_id")), change)
        row = await self._write(_REVISE_ALERT_ANNOUNCED, params)
        if row is None:
            raise RuntimeError(f"alert {alert.alert_id} is no longer open at revision {alert.revision - 1}")
        return int(row[0])

    async def record_change(self, change: NewChange) -> int:
        """A change of an alert already written (`close_alert`), as `AlertsStore.record_change` records it."""
        params = _change_params({"alert_id": change.document["alert_id"]}, change)
        row = await self._write(_RECORD_CHANGE_ANNOUNCED, params)
        assert row is not None
        return int(row[0])

    async def close_alert(self, alert_id: str, details: Mapping[str, Any], *, by: str | None = None) -> AlertRecord:
        """The alert resolved, as `AlertsStore.close_alert` resolves it."""
        params = _close_params(alert_id, json.dumps(dict(details)), by)
        row = await self.connection.fetchrow(_CLOSE_ALERT_BY_DRIVER.sql, *_CLOSE_ALERT_BY_DRIVER.arguments(params))
        if row is None:
            raise RuntimeError(f"alert {alert_id} is gone")
        return alert_of(row)

    async def resolved_fingerprint(self, alert_type: AlertType, subject: str) -> str | None:
        """The evidence of the subject's latest alert if a person resolved it (None otherwise)."""
        row = await self.connection.fetchrow(
            LATEST_ALERT_BY_DRIVER.sql,
            *LATEST_ALERT_BY_DRIVER.arguments({"type": alert_type.value, "subject": subject}),
        )
        return row["fingerprint"] if row is not None and row["resolved_by"] is not None else None

    async def _write(self, statement: DriverStatement, params: dict[str, Any]) -> Any:
        for name in _JSON_PARAMS:
            if name in params:
                params[name] = json.dumps(params[name])
        events = self.events.take()
        params |= {
            "event_ids": [event.event_id for event in events],
            "event_types": [event.event_type for event in events],
            "event_topics": [event.topic for event in events],
            "event_keys": [event.key for event in events],
            "event_payloads": [event.payload for event in events],
        }
        return await self.connection.fetchrow(statement.sql, *statement.arguments(params))


class AlertsStore:
    session: AsyncSession
    # The subjects' advisory locks this transaction holds (`lock_subject`).
    subject_locks: set[int]

    async def lock_subject(self, alert_type: AlertType, subject: str) -> None:
        """The subject's advisory lock, held to the commit (taken once per transaction): whoever may raise or
        revise the subject's alert takes it before reading what the decision reads, so every statement after it
        sees what each earlier holder committed."""
        key = subject_lock_key(alert_type, subject)
        if key not in self.subject_locks:
            await self.session.execute(_SUBJECT_LOCK, {"key": key})
            self.subject_locks.add(key)

    async def open_alert_for(self, alert_type: AlertType, subject: str) -> AlertRecord | None:
        """The open alert of (type, subject), locked to the commit. The subject's advisory lock is taken first
        (`lock_subject`), so concurrent evidence for one subject queues here and two requests never both raise."""
        await self.lock_subject(alert_type, subject)
        row = (await self.session.execute(_OPEN_ALERT, {"type": alert_type.value, "subject": subject})).first()
        return _alert(row) if row else None

    def new_alert(
        self, alert_type: AlertType, subject: str, content: AlertContent, *, priority: Priority, fingerprint: str
    ) -> AlertRecord:
        """An alert about to be raised, as `raise_alert` will store it (nothing is written here)."""
        return new_alert(alert_type, subject, content, priority=priority, fingerprint=fingerprint)

    async def raise_alert(self, alert: AlertRecord, change: NewChange) -> int:
        """Store a new alert (`new_alert`) with its first change, as `record_change` records a change (the change
        log with its NOTIFY, the webhook deliveries), in one round trip; returns the change's id."""
        params = _change_params(_values(alert, _ALERT_INSERTED), change)
        change_id, _ = (await self.session.execute(_RAISE_ALERT, params)).one()
        return int(change_id)

    def revised_alert(
        self, current: AlertRecord, content: AlertContent, *, priority: Priority, fingerprint: str
    ) -> AlertRecord:
        """The open alert `current` (locked by this transaction) with new content, as its next revision will be
        stored by `revise_alert` (nothing is written here)."""
        return revised_alert(current, content, priority=priority, fingerprint=fingerprint)

    async def revise_alert(self, alert: AlertRecord, change: NewChange) -> int:
        """Store an alert's next revision (`revised_alert`) with its change, as `record_change` records one, in one
        round trip; returns the change's id."""
        params = _change_params(_values(alert, (*_ALERT_REVISED, "alert_id")), change)
        row = (await self.session.execute(_REVISE_ALERT, params)).first()
        if row is None:
            raise RuntimeError(f"alert {alert.alert_id} is no longer open at revision {alert.revision - 1}")
        return int(row[0])

    async def close_alert(self, alert_id: str, details: Mapping[str, Any], *, by: str | None = None) -> AlertRecord:
        """The alert resolved, as its next revision; `by` names the person (None: the cause went away)."""
        row = (await self.session.execute(_CLOSE_ALERT, _close_params(alert_id, dict(details), by))).one()
        return _alert(row)

    async def acknowledge_alert(self, alert_id: str, *, by: str) -> AlertRecord:
        """The alert acknowledged by `by`, as its next revision."""
        now = datetime.now(UTC)
        row = (
            await self.session.execute(
                update(alerts)
                .where(alerts.c.alert_id == alert_id)
                .values(revision=alerts.c.revision + 1, updated_at=now, acknowledged_at=now, acknowledged_by=by)
                .returning(*alerts.c)
            )
        ).one()
        return _alert(row)

    async def alert_for_update(self, alert_id: str) -> AlertRecord | None:
        """The alert, locked to the commit: a person's action and new evidence for it take turns."""
        query = select(alerts).where(alerts.c.alert_id == alert_id).with_for_update()
        row = (await self.session.execute(query)).first()
        return _alert(row) if row else None

    async def resolved_fingerprint(self, alert_type: AlertType, subject: str) -> str | None:
        """The evidence of the subject's latest alert if a person resolved it (None otherwise)."""
        row = (await self.session.execute(_LATEST_ALERT, {"type": alert_type.value, "subject": subject})).first()
        return row.fingerprint if row is not None and row.resolved_by is not None else None

    async def record_change(self, change: NewChange) -> int:
        """Append the alert's change to the change log and queue its webhook deliveries with its message as their
        body, in one round trip, as `raise_alert` and `revise_alert` do with their write; returns the change's id
        (its stream number is given after the commit). The change is stamped `at`, the message's timestamp, so a
        stream rebuilds the very same message from the log; the deliveries keep its trace."""
        params = _change_params({"alert_id": change.document["alert_id"]}, change)
        change_id, _ = (await self.session.execute(_RECORD_CHANGE, params)).one()
        return int(change_id)

    async def get_alert(self, alert_id: str) -> AlertRecord | None:
        row = (await self.session.execute(select(alerts).where(alerts.c.alert_id == alert_id))).first()
        return _alert(row) if row else None

    async def list_alerts(
        self, where: AlertFilter, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[AlertRecord]:
        """Alerts by last change, oldest first; `after` is the (updated_at, alert_id) of the previous page."""
        query = select(alerts).order_by(alerts.c.updated_at, alerts.c.alert_id).limit(limit)
        if where.since is not None:
            query = query.where(alerts.c.updated_at >= where.since)
        if where.sku is not None:
            query = query.where(alerts.c.sku == where.sku)
        if where.account_id is not None:
            query = query.where(any_(alerts.c.account_ids) == where.account_id)
        if where.alert_type is not None:
            query = query.where(alerts.c.type == where.alert_type.value)
        if where.status is not None:
            query = query.where(alerts.c.status == where.status)
        if where.state is not None:
            query = query.where(_in_state(where.state))
        if where.segment is not None:
            query = query.where(
                or_(
                    alerts.c.accounts.contains([{"segment": where.segment}]),
                    alerts.c.details["target_segments"].contains([where.segment]),
                )
            )
        if after is not None:
            query = query.where(
                tuple_(alerts.c.updated_at, alerts.c.alert_id) > tuple_(literal(after[0]), literal(after[1]))
            )
        return [_alert(row) for row in (await self.session.execute(query)).all()]


def _in_state(state: AlertState) -> ColumnElement[bool]:
    if state is AlertState.RESOLVED:
        return alerts.c.status == RESOLVED
    acknowledged = alerts.c.acknowledged_at.is_not(None)
    return and_(alerts.c.status == OPEN, acknowledged if state is AlertState.ACKNOWLEDGED else ~acknowledged)


def _content(content: AlertContent, priority: Priority, fingerprint: str) -> dict[str, Any]:
    return {
        "priority": priority.value,
        "sku": content.sku,
        "account_ids": content.account_ids,
        "accounts": content.accounts,
        "details": content.details,
        "fingerprint": fingerprint,
    }
