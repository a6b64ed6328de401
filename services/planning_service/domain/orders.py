"""Booked sales-order lines in the plan: service tiers, open quantity per promised week, forecast consumption.

Planning keeps its own copy of each open order line (event-carried state from `salesops.orders`) with the
account's tier (from `salesops.accounts`). These are the customer commitments that ATP subtracts and that
consume the forecast of their week.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

import numpy as np

from .weeks import FloatArray, require_monday, week_index


class Tier(StrEnum):
    """The service-differentiation tiers of an account, highest first."""

    STRATEGIC = "strategic"
    INTEGRATED = "integrated"
    EMERGING = "emerging"
    STABLE = "stable"

    @property
    def rank(self) -> int:
        """1 for the lowest tier (stable) up to 4 for the highest (strategic)."""
        return _RANKS[self]


_RANKS = {Tier.STABLE: 1, Tier.EMERGING: 2, Tier.INTEGRATED: 3, Tier.STRATEGIC: 4}
TIERS_LOWEST_FIRST: tuple[Tier, ...] = (Tier.STABLE, Tier.EMERGING, Tier.INTEGRATED, Tier.STRATEGIC)
# An account planning has not heard of yet gets no protection and breaks first: it was sold no tier.
UNKNOWN_ACCOUNT_TIER = Tier.STABLE


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One open sales-order line as planning sees it.

    `open_quantity` is what is still to ship (ordered minus shipped; zero once shipped or cancelled).
    `booked_at` is when the order was first booked: among lines of one tier, the earlier booking keeps its
    promise first. `version` is the order's version; only the newest version of a line counts.
    """

    order_id: str
    line_id: str
    account_id: str
    tier: Tier
    sku: str
    open_quantity: float
    promised_on: date
    booked_at: datetime
    version: int = 1

    def __post_init__(self) -> None:
        if not math.isfinite(self.open_quantity) or self.open_quantity < 0:
            raise ValueError(f"order {self.order_id} line {self.line_id}: open_quantity must be finite and >= 0")

    @property
    def key(self) -> tuple[str, str]:
        return (self.order_id, self.line_id)


def priority_key(line: OrderLine) -> tuple[int, datetime, str, str]:
    """Sort key putting the line that keeps its promise first at the front: higher tier, then earlier
    booking; order and line ids only make ties deterministic."""
    return (-line.tier.rank, line.booked_at, line.order_id, line.line_id)


def latest_lines(lines: Iterable[OrderLine]) -> list[OrderLine]:
    """The newest version of every (order_id, line_id), in priority order.

    An older version never overwrites a newer one, so duplicates and out-of-order events change nothing.
    Two different records of the same version should not exist; if they do, the choice is still
    deterministic (the larger record by its fields), never dependent on arrival order.
    """
    newest: dict[tuple[str, str], OrderLine] = {}
    for line in lines:
        held = newest.get(line.key)
        if held is None or _version_key(line) > _version_key(held):
            newest[line.key] = line
    return sorted(newest.values(), key=priority_key)


def _version_key(line: OrderLine) -> tuple[int, float, date, datetime, str, str, str]:
    return (
        line.version,
        line.open_quantity,
        line.promised_on,
        line.booked_at,
        line.tier.value,
        line.account_id,
        line.sku,
    )


def promised_week(promised_on: date, horizon_start: date) -> int:
    """Week index a line is due in: a date before the horizon is past due and due now (week 0)."""
    return max(week_index(promised_on, horizon_start), 0)


def booked_orders(lines: Iterable[OrderLine], horizon_start: date, weeks: int) -> FloatArray:
    """Open quantity per week of the horizon, by promised date (one SKU's lines, or any set to total).

    Past-due open lines count in the current week (they are owed now). Lines promised after the horizon
    are left out: no supply is planned for them yet.
    """
    return booked_by_tier(lines, horizon_start, weeks).sum(axis=0)


def booked_by_tier(lines: Iterable[OrderLine], horizon_start: date, weeks: int) -> FloatArray:
    """Open quantity per (tier, week): row `tier.rank - 1` (stable first), same rules as booked_orders."""
    require_monday(horizon_start)
    booked = np.zeros((len(TIERS_LOWEST_FIRST), weeks))
    for line in latest_lines(lines):
        week = promised_week(line.promised_on, horizon_start)
        if week < weeks:
            booked[line.tier.rank - 1, week] += line.open_quantity
    return booked


def booked_matrix(lines: Iterable[OrderLine], rows: Mapping[str, int], horizon_start: date, weeks: int) -> FloatArray:
    """booked_orders of many SKUs at once, shape (len(rows), weeks), row = rows[sku]; other SKUs are ignored.

    Built for `plan_many`, whose arrays are indexed the same way.
    """
    require_monday(horizon_start)
    booked = np.zeros((len(rows), weeks))
    newest = latest_lines(lines)
    start = horizon_start.toordinal()
    at = np.array([rows.get(line.sku, -1) for line in newest], dtype=np.int64)
    week = np.maximum((np.array([line.promised_on.toordinal() for line in newest], dtype=np.int64) - start) // 7, 0)
    quantity = np.array([line.open_quantity for line in newest], dtype=np.float64)
    counted = (at >= 0) & (week < weeks)
    # Added in priority order, one line after the other (`add.at` is unbuffered), as a loop would.
    np.add.at(booked, (at[counted], week[counted]), quantity[counted])
    return booked


def consume_forecast(forecast: FloatArray, booked: FloatArray, replacements: FloatArray) -> FloatArray:
    """Gross requirements with forecast consumption: `max(forecast, booked_orders) + replacements`.

    Orders booked for a week consume that week's forecast (they are the part of it that came true); only
    orders beyond the forecast add to it. Replacements of returned goods are owed on top of both.
    """
    gross: FloatArray = np.maximum(forecast, booked) + replacements
    return gross


def lines_of_sku(lines: Sequence[OrderLine], sku: str) -> list[OrderLine]:
    """The lines of one SKU; a line of another SKU among them is a wiring error, not data to ignore."""
    strays = sorted({line.sku for line in lines if line.sku != sku})
    if strays:
        raise ValueError(f"lines of other SKUs given for {sku}: {', '.join(strays)}")
    return list(lines)
