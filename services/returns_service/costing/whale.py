"""Totals per account and per segment, and the whale curve: accounts ranked by contribution with the
cumulative share of the total (it rises above 100 % through the profitable accounts, then the unprofitable
ones pull it back down to 100 %)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from ..domain import Segment
from .ledger import LedgerEntry, Pool, contribution_pct, entries_between

SEGMENT_ORDER: tuple[Segment | None, ...] = (
    Segment.STRATEGIC,
    Segment.INTEGRATED,
    Segment.EMERGING,
    Segment.STABLE,
    None,  # accounts the service has no segment for yet
)


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over some ledger entries: the goods' money, each pool, cost-to-serve and contribution."""

    revenue: float
    cost_of_goods: float
    pools: tuple[Pool, ...]
    cost_to_serve: float
    contribution: float
    contribution_pct: float | None
    returned_units: float
    unpriced_units: float


@dataclass(frozen=True, slots=True)
class AccountTotals:
    account_id: str
    segment: Segment | None
    totals: Totals


@dataclass(frozen=True, slots=True)
class SegmentTotals:
    segment: Segment | None
    accounts: int
    totals: Totals


@dataclass(frozen=True, slots=True)
class WhalePoint:
    rank: int  # 1 = the largest contribution
    account_id: str
    segment: Segment | None
    contribution: float
    cumulative_contribution: float
    cumulative_share: float | None  # of the total contribution; None when the total is not positive


def entry_totals(entry: LedgerEntry) -> Totals:
    return Totals(
        revenue=entry.revenue,
        cost_of_goods=entry.cost_of_goods,
        pools=entry.pools,
        cost_to_serve=entry.cost_to_serve,
        contribution=entry.contribution,
        contribution_pct=entry.contribution_pct,
        returned_units=entry.returned_units,
        unpriced_units=entry.unpriced_units,
    )


def sum_totals(entries: Iterable[LedgerEntry]) -> Totals:
    """Totals of the entries (summed in the order given: pass them sorted for reproducible figures)."""
    return add_totals(entry_totals(entry) for entry in entries)


def add_totals(parts: Iterable[Totals]) -> Totals:
    """The sum of several totals; pools are matched by name (rates are the same wherever priced together)."""
    revenue = cost_of_goods = cost_to_serve = returned = unpriced = 0.0
    counts: dict[str, float] = {}
    amounts: dict[str, float] = {}
    rates: dict[str, float | None] = {}
    for part in parts:
        revenue += part.revenue
        cost_of_goods += part.cost_of_goods
        cost_to_serve += part.cost_to_serve
        returned += part.returned_units
        unpriced += part.unpriced_units
        for pool in part.pools:
            counts[pool.name] = counts.get(pool.name, 0.0) + pool.count
            amounts[pool.name] = amounts.get(pool.name, 0.0) + pool.amount
            rates[pool.name] = pool.rate
    contribution = revenue - cost_of_goods - cost_to_serve
    return Totals(
        revenue=revenue,
        cost_of_goods=cost_of_goods,
        pools=tuple(Pool(name, counts[name], rates[name], amounts[name]) for name in counts),
        cost_to_serve=cost_to_serve,
        contribution=contribution,
        contribution_pct=contribution_pct(contribution, revenue),
        returned_units=returned,
        unpriced_units=unpriced,
    )


def totals_by_account(
    entries: Iterable[LedgerEntry],
    segments: Mapping[str, Segment],
    first: date | None = None,
    last: date | None = None,
) -> list[AccountTotals]:
    """Per account over the months in [first, last], sorted by account id; `segments` are the assigned ones."""
    by_account: dict[str, list[LedgerEntry]] = {}
    for entry in entries_between(entries, first, last):
        by_account.setdefault(entry.account_id, []).append(entry)
    return [
        AccountTotals(account_id, segments.get(account_id), sum_totals(sorted(rows, key=lambda e: e.month)))
        for account_id, rows in sorted(by_account.items())
    ]


def totals_by_segment(accounts: Sequence[AccountTotals]) -> list[SegmentTotals]:
    """One row per segment with accounts (strategic first, unassigned last): the sums of its accounts."""
    result = []
    for segment in SEGMENT_ORDER:
        members = [a for a in accounts if a.segment == segment]
        if members:
            result.append(SegmentTotals(segment, len(members), add_totals(a.totals for a in members)))
    return result


def whale_curve(accounts: Sequence[AccountTotals]) -> list[WhalePoint]:
    """Accounts by contribution, largest first (ties by account id), with the running total and its share."""
    ranked = sorted(accounts, key=lambda a: (-a.totals.contribution, a.account_id))
    total = sum(a.totals.contribution for a in ranked)
    points = []
    running = 0.0
    for rank, account in enumerate(ranked, start=1):
        running += account.totals.contribution
        share = running / total if total > 0 else None
        points.append(
            WhalePoint(rank, account.account_id, account.segment, account.totals.contribution, running, share)
        )
    return points
