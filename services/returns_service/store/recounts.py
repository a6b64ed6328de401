"""The recount of an account a return or complaint marked, on the driver (`shared.db.driver_connection`): the claim
of a batch of marks is one statement, a transaction of its own (`claim_recounts_by_driver`); a recount runs in a
transaction (`recount_transaction`) of the statements `CostingStore` runs for each account (its cost lock with its
mark, its facts, its ledger, its evaluation inputs, its open cost alerts, the mark's removal), with the alerts it
raises, revises or resolves written as `AlertsByDriver` writes them, each with its events. Several accounts may
share one transaction (`cost_handlers.recount_marked_together`): the first takes its lock as `begin_recount` does,
the others only if theirs is free (`try_begin_recount`), and their marks go together at the end
(`finish_recounts`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, select

from services.returns_service.costing import AccountMonth, LedgerFacts
from services.returns_service.domain import AlertType
from services.returns_service.store import costing
from services.returns_service.store.alerts import AlertRecord, AlertsByDriver, EventBuffer, alert_of, driver_transaction
from shared.db import DriverStatement

_CLAIM_RECOUNTS = DriverStatement.of(costing.CLAIM_RECOUNTS)
_BEGIN_RECOUNT = DriverStatement.of(costing.BEGIN_RECOUNT)
_TRY_BEGIN_RECOUNT = DriverStatement.of(costing.TRY_BEGIN_RECOUNT)
_FINISH_RECOUNTS = DriverStatement.of(costing.FINISH_RECOUNTS)
_COST_LOCK = DriverStatement.of(select(func.pg_advisory_xact_lock(bindparam("lock_key", type_=BigInteger))))
_ACCOUNT_FACTS = DriverStatement.of(costing.ACCOUNT_FACTS)
_REPLACE_LEDGER = DriverStatement.of(costing.REPLACE_LEDGER)
_EVALUATION_INPUTS = DriverStatement.of(costing.EVALUATION_INPUTS)
_BEGIN_EVALUATION = DriverStatement.of(costing.BEGIN_EVALUATION)


async def claim_recounts_by_driver(connection: Any, *, limit: int, lease_s: float) -> list[str]:
    """`CostingStore.claim_recounts` as one statement on the driver, committed on its own."""
    rows = await connection.fetch(_CLAIM_RECOUNTS.sql, *_CLAIM_RECOUNTS.arguments({"limit": limit, "lease_s": lease_s}))
    return [row["account_id"] for row in sorted(rows, key=lambda r: (r["due_at"], r["account_id"]))]


class RecountsByDriver(AlertsByDriver):
    """The store of one marked account's recount (`cost_handlers.recount_marked`) on a driver's connection, in the
    transaction `recount_transaction` holds: `CostingStore`'s statements and answers, run by the driver."""

    def __init__(self, connection: Any, events: EventBuffer) -> None:
        super().__init__(connection, events)
        # Accounts whose cost lock this transaction holds.
        self.cost_locks: set[str] = set()

    async def _fetch(self, statement: DriverStatement, params: dict[str, Any]) -> list[Any]:
        return list(await self.connection.fetch(statement.sql, *statement.arguments(params)))

    async def lock_account_costs(self, account_id: str) -> None:
        if account_id in self.cost_locks:
            return
        await self._fetch(_COST_LOCK, {"lock_key": costing.cost_lock_key(account_id)})
        self.cost_locks.add(account_id)

    async def begin_recount(self, account_id: str) -> int | None:
        """As `CostingStore.begin_recount`: the account's cost lock and its mark's `due_seq` (None: no mark)."""
        [row] = await self._fetch(
            _BEGIN_RECOUNT, {"lock_key": costing.cost_lock_key(account_id), "account_id": account_id}
        )
        self.cost_locks.add(account_id)
        return None if row["due_seq"] is None else int(row["due_seq"])

    async def try_begin_recount(self, account_id: str) -> tuple[bool, int | None]:
        """As `begin_recount` without waiting: whether the account's cost lock was free (then taken, to the commit),
        and its mark's `due_seq` (None: no mark). An account recounted after others in one transaction takes its
        lock so: a transaction that holds cost locks never waits for another, so it can never be part of a
        deadlock with one that takes the same locks in another order."""
        [row] = await self._fetch(
            _TRY_BEGIN_RECOUNT, {"lock_key": costing.cost_lock_key(account_id), "account_id": account_id}
        )
        if not row["locked"]:
            return False, None
        self.cost_locks.add(account_id)
        return True, None if row["due_seq"] is None else int(row["due_seq"])

    async def finish_recounts(self, marks: Sequence[tuple[str, int]]) -> None:
        """`finish_recount` of several accounts (account id, `due_seq` read) in one statement."""
        if not marks:
            return
        assert all(account_id in self.cost_locks for account_id, _ in marks), "remove a mark under its cost lock"
        params = {"account_ids": [a for a, _ in marks], "due_seqs": [d for _, d in marks]}
        await self.connection.execute(_FINISH_RECOUNTS.sql, *_FINISH_RECOUNTS.arguments(params))

    async def finish_recount(self, account_id: str, due_seq: int) -> bool:
        """As `CostingStore.finish_recount`: the mark removed if it is still the one `begin_recount` read."""
        return bool(await self._fetch(_FINISH_RECOUNTS, {"account_ids": [account_id], "due_seqs": [due_seq]}))

    async def account_facts(self, account_id: str) -> LedgerFacts:
        [row] = await self._fetch(_ACCOUNT_FACTS, {"account_id": account_id})
        return costing.ledger_facts_of(account_id, row)

    async def replace_ledger(self, account_id: str, months: Sequence[AccountMonth], as_of: date) -> None:
        months_json = json.dumps(costing.ledger_rows(months))
        await self._fetch(_REPLACE_LEDGER, {"account_id": account_id, "months": months_json, "as_of": as_of})

    async def evaluation_inputs(
        self, account_id: str, *, first: date, last: date, mapping_first: date, mapping_last: date
    ) -> costing.EvaluationInputs:
        params = {
            "account_id": account_id,
            "first": first,
            "last": last,
            "m_first": mapping_first,
            "m_last": mapping_last,
        }
        return costing.evaluation_inputs_of(account_id, await self._fetch(_EVALUATION_INPUTS, params))

    async def begin_evaluation(
        self, account_id: str, alert_types: Sequence[AlertType], at: datetime
    ) -> dict[str, AlertRecord]:
        """As `CostingStore.begin_evaluation`: the account marked evaluated, its open alerts of `alert_types` locked
        to the commit."""
        assert account_id in self.cost_locks, "evaluate an account's cost alerts under its cost lock"
        params = {"account_id": account_id, "types": [t.value for t in alert_types], "at": at}
        return {row["type"]: alert_of(row) for row in await self._fetch(_BEGIN_EVALUATION, params)}

    async def open_alert_for(self, alert_type: AlertType, subject: str) -> AlertRecord | None:
        raise RuntimeError(f"an account's cost alerts are read by begin_evaluation ({alert_type.value} of '{subject}')")


@asynccontextmanager
async def recount_transaction(connection: Any, events: EventBuffer) -> AsyncIterator[RecountsByDriver]:
    """A transaction on a driver's connection for the recount of marked accounts (`driver_transaction`); its first
    statement takes the first account's cost lock (`RecountsByDriver.begin_recount`)."""
    async with driver_transaction(connection, events):
        yield RecountsByDriver(connection, events)
