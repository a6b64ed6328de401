"""Read side of the returns API: returns, complaints, accounts and alerts as the API shows them, one or a page
at a time, and the cost-to-serve ledger priced at the current rates. Like every read model, these read through
the store and only shape its records."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from services.returns_service.cost_schemas import AccountCostRead, CostRatesRead, CostToServeRead
from services.returns_service.costing import (
    LedgerEntry,
    MarketMappingRule,
    Totals,
    behaviour_profile,
    entries_between,
    month_of,
    price,
    suggest_tier,
    suggest_tiers,
    sum_totals,
    totals_by_account,
    totals_by_segment,
    whale_curve,
    window,
)
from services.returns_service.costing.whale import add_totals, entry_totals
from services.returns_service.domain import Segment
from services.returns_service.handlers import alert_document
from services.returns_service.schemas import AccountRead, AlertRead, ComplaintRead, ReturnRead
from services.returns_service.store import AccountRecord, AlertFilter, AlertRecord, Recorded, SqlStore, StoredRates


def return_read(stored: Recorded) -> ReturnRead:
    return ReturnRead.model_validate({**stored.body, "created_at": stored.created_at})


def complaint_read(stored: Recorded) -> ComplaintRead:
    return ComplaintRead.model_validate({**stored.body, "created_at": stored.created_at})


def account_read(account: AccountRecord) -> AccountRead:
    return AccountRead.model_validate(account, from_attributes=True)


def alert_read(alert: AlertRecord) -> AlertRead:
    """The alert as the API shows it: the same document the topic, the SSE stream and webhooks carry."""
    return AlertRead.model_validate(alert_document(alert))


async def get_return(store: SqlStore, return_id: str) -> ReturnRead | None:
    stored = await store.get_return(return_id)
    return return_read(stored) if stored else None


async def list_returns(
    store: SqlStore, *, sku: str | None, account_id: str | None, since: date | None, limit: int, after: str | None
) -> list[ReturnRead]:
    found = await store.list_returns(sku=sku, account_id=account_id, since=since, limit=limit, after=after)
    return [return_read(stored) for stored in found]


async def get_complaint(store: SqlStore, complaint_id: str) -> ComplaintRead | None:
    stored = await store.get_complaint(complaint_id)
    return complaint_read(stored) if stored else None


async def list_complaints(
    store: SqlStore, *, account_id: str | None, sku: str | None, limit: int, after: str | None
) -> list[ComplaintRead]:
    found = await store.list_complaints(account_id=account_id, sku=sku, limit=limit, after=after)
    return [complaint_read(stored) for stored in found]


async def get_account(store: SqlStore, account_id: str) -> AccountRead | None:
    account = await store.get_account(account_id)
    return account_read(account) if account else None


async def list_accounts(
    store: SqlStore, *, segment: Segment | None, limit: int, after: str | None
) -> list[AccountRead]:
    return [account_read(a) for a in await store.list_accounts(segment=segment, limit=limit, after=after)]


async def get_alert(store: SqlStore, alert_id: str) -> AlertRead | None:
    alert = await store.get_alert(alert_id)
    return alert_read(alert) if alert else None


async def list_alerts(
    store: SqlStore, where: AlertFilter, *, limit: int, after: tuple[datetime, str] | None
) -> list[AlertRead]:
    """Alerts by last change, oldest first; `after` is the (updated_at, alert_id) of the previous page."""
    return [alert_read(alert) for alert in await store.list_alerts(where, limit=limit, after=after)]


# ---------------------------------------------------------------- cost-to-serve


def rates_read(stored: StoredRates) -> CostRatesRead:
    return CostRatesRead.model_validate(
        {**asdict(stored.rates), "updated_at": stored.updated_at, "updated_by": stored.updated_by}
    )


def _totals(totals: Totals) -> dict[str, Any]:
    return {
        "revenue": totals.revenue,
        "cost_of_goods": totals.cost_of_goods,
        "pools": [{"pool": p.name, "count": p.count, "rate": p.rate, "amount": p.amount} for p in totals.pools],
        "cost_to_serve": totals.cost_to_serve,
        "contribution": totals.contribution,
        "contribution_pct": totals.contribution_pct,
        "returned_units": totals.returned_units,
        "unpriced_units": totals.unpriced_units,
    }


async def _priced(store: SqlStore, account_id: str | None, first: date, last: date) -> tuple[str, list[LedgerEntry]]:
    rates = (await store.stored_rates()).rates
    months = await store.ledger_months(account_id=account_id, first=first, last=last)
    return rates.currency, [price(m, rates) for m in months]


async def account_cost_to_serve(
    store: SqlStore, account_id: str, first: date, last: date, as_of: date, rule: MarketMappingRule
) -> AccountCostRead | None:
    """The account's ledger per month in [first, last] priced at the current rates, its totals, and the tier its
    behaviour over the mapping window ending `as_of` suggests; None when the service knows nothing of it."""
    account = (await store.accounts_by_id([account_id])).get(account_id)
    if account is None and not await store.has_cost_ledger(account_id):
        return None
    window_first = min(month_of(first), window(as_of, rule.window_months)[0])
    currency, entries = await _priced(store, account_id, window_first, max(month_of(last), month_of(as_of)))
    shown = list(entries_between(entries, first, last))
    segment = account.segment if account else None
    profile = behaviour_profile(
        account_id, entries, as_of, rule.window_months, await _window_revenue(store, as_of, rule)
    )
    return AccountCostRead.model_validate(
        {
            "account_id": account_id,
            "name": account.name if account else None,
            "segment": segment,
            "suggested_segment": suggest_tier(profile, segment, rule).suggested,
            "currency": currency,
            "from_month": month_of(first),
            "to_month": month_of(last),
            "months": [{"month": e.month, **_totals(entry_totals(e))} for e in shown],
            "totals": _totals(sum_totals(shown)),
        }
    )


async def _window_revenue(store: SqlStore, as_of: date, rule: MarketMappingRule) -> float:
    start, end = window(as_of, rule.window_months)
    return await store.revenue_between(start, end)


async def cost_to_serve(
    store: SqlStore,
    first: date,
    last: date,
    segment: Segment | None,
    as_of: date,
    rule: MarketMappingRule,
    limit: int,
) -> CostToServeRead:
    """Accounts ranked by contribution over [first, last] with the cumulative share (the whale curve), totals
    per segment and overall, and each account's suggested segment beside its assigned one. With `segment`, only
    the accounts assigned to it."""
    window_first = min(month_of(first), window(as_of, rule.window_months)[0])
    currency, entries = await _priced(store, None, window_first, max(month_of(last), month_of(as_of)))
    shown = list(entries_between(entries, first, last))
    accounts = await store.accounts_by_id({e.account_id for e in shown})
    segments = {account_id: account.segment for account_id, account in accounts.items()}
    suggestions = suggest_tiers(entries, segments, as_of, rule)
    rows = totals_by_account(shown, segments)
    if segment is not None:
        rows = [row for row in rows if row.segment == segment]
    by_account = {row.account_id: row for row in rows}
    curve = whale_curve(rows)
    return CostToServeRead.model_validate(
        {
            "currency": currency,
            "from_month": month_of(first),
            "to_month": month_of(last),
            "segment": segment,
            "accounts_total": len(curve),
            "accounts": [
                {
                    **_totals(by_account[p.account_id].totals),
                    "rank": p.rank,
                    "account_id": p.account_id,
                    "name": accounts[p.account_id].name if p.account_id in accounts else None,
                    "segment": p.segment,
                    "suggested_segment": (suggestions[p.account_id].suggested if p.account_id in suggestions else None),
                    "cumulative_contribution": p.cumulative_contribution,
                    "cumulative_share": p.cumulative_share,
                }
                for p in curve[:limit]
            ],
            "segments": [
                {"segment": s.segment, "accounts": s.accounts, **_totals(s.totals)} for s in totals_by_segment(rows)
            ],
            "totals": _totals(add_totals(row.totals for row in rows)),
        }
    )
