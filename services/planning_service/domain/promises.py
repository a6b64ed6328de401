"""Promising against the plan: the ATP view of a SKU, the promise check, and the promises a revision breaks.

All three read one SKU's `Supply` (on hand plus each week's receipts, from its current plan) and its open
order lines; they commit nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from .allocation import NO_PROTECTION, AllocationPolicy, committed_levels, supply_levels, tier_availability
from .atp import available_to_promise_one
from .model import SkuPlan
from .mps import TOLERANCE
from .orders import OrderLine, Tier, booked_by_tier, latest_lines, lines_of_sku, promised_week
from .weeks import FloatArray, require_monday, week_starts


@dataclass(frozen=True, slots=True)
class Supply:
    """One SKU's supply over the horizon: on hand now and the receipts of each week (MPS quantity plus
    resellable returns). `other_commitments` per week are owed outside sales orders (replacements); they
    come before every order line."""

    sku: str
    horizon_start: date
    on_hand: float
    receipts: tuple[float, ...]
    other_commitments: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        require_monday(self.horizon_start)
        quantities = (self.on_hand, *self.receipts, *self.other_commitments)
        if not all(math.isfinite(q) and q >= 0 for q in quantities):
            raise ValueError(f"{self.sku}: on hand, receipts and other commitments must be finite and >= 0")
        if self.other_commitments and len(self.other_commitments) != len(self.receipts):
            raise ValueError("other_commitments must have one value per week of receipts")

    @classmethod
    def from_plan(cls, plan: SkuPlan, on_hand: float) -> Supply:
        if not plan.weeks:
            raise ValueError(f"{plan.sku}: the plan has no weeks")
        return cls(
            plan.sku,
            plan.weeks[0].week_start,
            on_hand,
            tuple(w.mps_quantity + w.returns_receipts for w in plan.weeks),
            tuple(w.replacements for w in plan.weeks),
        )

    @property
    def weeks(self) -> int:
        return len(self.receipts)

    def week_starts(self) -> list[date]:
        return week_starts(self.horizon_start, self.weeks)

    def other(self) -> FloatArray:
        return np.asarray(self.other_commitments or (0.0,) * self.weeks, dtype=np.float64)


def _availability(supply: Supply, booked: FloatArray, policy: AllocationPolicy, today: date) -> FloatArray:
    """tier_availability of the supply against `booked` (booked_by_tier of its lines)."""
    levels = supply_levels(supply.on_hand, np.asarray(supply.receipts), supply.week_starts(), policy, today)
    return tier_availability(levels, committed_levels(booked, supply.other()))


@dataclass(frozen=True, slots=True)
class AtpWeek:
    week_start: date
    receipts: float
    booked_orders: float
    other_commitments: float
    atp: float
    cumulative_atp: float
    available_by_tier: Mapping[Tier, float]  # cumulative: what each tier may be promised by this week
    protected: bool  # whether part of this week's receipts is still reserved for higher tiers
    protection_lapses_on: date


@dataclass(frozen=True, slots=True)
class AtpTable:
    sku: str
    weeks: tuple[AtpWeek, ...]
    oversold: float  # booked quantity no supply covers on time (served late from later receipts)


def atp_table(
    supply: Supply, lines: Sequence[OrderLine], today: date, policy: AllocationPolicy = NO_PROTECTION
) -> AtpTable:
    """Per week: receipts, booked orders, APICS ATP and cumulative ATP, and each tier's availability."""
    lines = lines_of_sku(lines, supply.sku)
    booked_tiers = booked_by_tier(lines, supply.horizon_start, supply.weeks)
    booked = booked_tiers.sum(axis=0)
    other = supply.other()
    atp = available_to_promise_one(supply.on_hand, np.asarray(supply.receipts), booked + other)
    by_tier = _availability(supply, booked_tiers, policy, today)
    weeks = []
    for index, start in enumerate(supply.week_starts()):
        weeks.append(
            AtpWeek(
                week_start=start,
                receipts=float(supply.receipts[index]),
                booked_orders=float(booked[index]),
                other_commitments=float(other[index]),
                atp=float(atp.atp[0, index]),
                cumulative_atp=float(atp.cumulative_atp[0, index]),
                available_by_tier={tier: float(by_tier[tier.rank - 1, index]) for tier in Tier},
                protected=policy.is_protected(start, today) and supply.receipts[index] > TOLERANCE,
                protection_lapses_on=policy.lapses_on(start),
            )
        )
    return AtpTable(supply.sku, tuple(weeks), float(atp.oversold[0]))


@dataclass(frozen=True, slots=True)
class PromiseRequest:
    tier: Tier
    quantity: float
    requested_on: date

    def __post_init__(self) -> None:
        if not self.quantity > 0:
            raise ValueError("quantity must be > 0")


@dataclass(frozen=True, slots=True)
class WeekDraw:
    week_start: date  # the receipt week (or on hand, in the first week) the quantity would come from
    quantity: float


class Limit:
    ALLOCATION = "allocation"  # supply exists, but it is protected for higher tiers
    SUPPLY = "supply"  # not even the top tier could be promised this much by then
    HORIZON = "horizon"  # the date lies after the planning horizon


@dataclass(frozen=True, slots=True)
class PromiseCheck:
    sku: str
    tier: Tier
    quantity: float
    requested_on: date
    can_promise: bool
    available: float  # what the tier may be promised by the requested week
    available_to_top_tier: float  # the same for the highest tier: the supply itself
    draws: tuple[WeekDraw, ...]  # where min(quantity, available) would come from, latest receipt first
    earliest_full_on: date | None  # requested_on if promisable, else the first week that covers it all
    limited_by: str | None  # a Limit value, None when promisable
    protected_for_higher_tiers: float  # supply by the requested week this tier may not use
    protection_lapses_on: date | None  # when the first protected receipt week up to then opens to all
    reasons: tuple[str, ...]


def check_promise(
    supply: Supply,
    lines: Sequence[OrderLine],
    request: PromiseRequest,
    today: date,
    policy: AllocationPolicy = NO_PROTECTION,
) -> PromiseCheck:
    """Can `request` be promised on its date within its tier's allocation, without breaking a booked line?

    Booked lines keep what they were promised whatever their tier, and none is pushed into a share above
    its own tier to make room: the request only gets what is left of the shares its tier may use. The
    quantity is drawn from the latest receipt week at or before the requested week first, as APICS
    look-ahead consumes ATP, leaving earlier supply for earlier dates.
    The earliest full date is the requested date (today if that has passed) when it fits, else the Monday
    of the first later week whose availability covers the quantity (None when no week of the horizon does),
    as of `today`: a protection lapsing later may open it sooner. A date before the horizon counts as the
    current week.
    """
    lines = lines_of_sku(lines, supply.sku)
    week = promised_week(request.requested_on, supply.horizon_start)
    if week >= supply.weeks:
        last = supply.week_starts()[-1] if supply.weeks else supply.horizon_start
        return PromiseCheck(
            sku=supply.sku,
            tier=request.tier,
            quantity=request.quantity,
            requested_on=request.requested_on,
            can_promise=False,
            available=0.0,
            available_to_top_tier=0.0,
            draws=(),
            earliest_full_on=None,
            limited_by=Limit.HORIZON,
            protected_for_higher_tiers=0.0,
            protection_lapses_on=None,
            reasons=(f"{request.requested_on} is after the planning horizon, which ends with the week of {last}",),
        )
    by_tier = _availability(supply, booked_by_tier(lines, supply.horizon_start, supply.weeks), policy, today)
    own = by_tier[request.tier.rank - 1]
    top = by_tier[-1]
    available, available_top = float(own[week]), float(top[week])
    fits = request.quantity <= available + TOLERANCE
    starts = supply.week_starts()
    draws = _draws(np.diff(own, prepend=0.0), week, min(request.quantity, available), starts)
    later = np.nonzero(own[week:] + TOLERANCE >= request.quantity)[0]
    earliest = max(request.requested_on, today) if fits else (starts[week + int(later[0])] if later.size else None)
    protected = max(available_top - available, 0.0)
    lapse = _first_lapse(supply, policy, today, week) if protected > TOLERANCE else None
    limited_by = None if fits else (Limit.SUPPLY if request.quantity > available_top + TOLERANCE else Limit.ALLOCATION)
    reasons = _reasons(request, available, available_top, protected, lapse, limited_by, earliest, starts[week])
    return PromiseCheck(
        sku=supply.sku,
        tier=request.tier,
        quantity=request.quantity,
        requested_on=request.requested_on,
        can_promise=fits,
        available=available,
        available_to_top_tier=available_top,
        draws=draws,
        earliest_full_on=earliest,
        limited_by=limited_by,
        protected_for_higher_tiers=protected,
        protection_lapses_on=lapse,
        reasons=reasons,
    )


def _draws(per_week: FloatArray, week: int, quantity: float, starts: Sequence[date]) -> tuple[WeekDraw, ...]:
    draws = []
    remaining = quantity
    for index in range(week, -1, -1):
        if remaining <= TOLERANCE:
            break
        take = min(float(per_week[index]), remaining)
        if take > TOLERANCE:
            draws.append(WeekDraw(starts[index], take))
            remaining -= take
    return tuple(draws)


def _first_lapse(supply: Supply, policy: AllocationPolicy, today: date, week: int) -> date | None:
    for start, receipt in zip(supply.week_starts()[: week + 1], supply.receipts, strict=False):
        if receipt > TOLERANCE and policy.is_protected(start, today):
            return policy.lapses_on(start)
    return None


def _reasons(
    request: PromiseRequest,
    available: float,
    available_top: float,
    protected: float,
    lapse: date | None,
    limited_by: str | None,
    earliest: date | None,
    week_start: date,
) -> tuple[str, ...]:
    tier = request.tier.value
    reasons = [f"{tier} allocation holds {available:g} by the week of {week_start}"]
    if limited_by is None:
        reasons[0] += f"; {request.quantity:g} fits"
    elif limited_by == Limit.SUPPLY:
        reasons.append(f"supply shortfall: only {available_top:g} can be promised to any tier by then")
    else:
        reasons.append(f"allocation: {available_top:g} is free by then, but part of it is protected for higher tiers")
    if protected > TOLERANCE and lapse is not None:
        reasons.append(f"{protected:g} is protected for tiers above {tier}; the first protection lapses on {lapse}")
    if limited_by is not None:
        reasons.append(
            f"earliest full date: {earliest}" if earliest else "no week of the horizon covers the full quantity"
        )
    return tuple(reasons)


@dataclass(frozen=True, slots=True)
class AtRiskLine:
    """A booked line its promised date can no longer be met for."""

    order_id: str
    line_id: str
    account_id: str
    tier: Tier
    sku: str
    promised_on: date
    quantity: float  # open quantity promised
    quantity_short: float  # what the supply left for it cannot cover on the promised date
    new_earliest_on: date | None  # Monday of the first week that covers it in full; None: not in the horizon

    @property
    def key(self) -> tuple[str, str]:
        return (self.order_id, self.line_id)


@dataclass(frozen=True, slots=True)
class PromiseReview:
    sku: str
    kept: tuple[tuple[str, str], ...]  # (order_id, line_id) met on their promised date, in priority order
    at_risk: tuple[AtRiskLine, ...]  # in priority order (the most important broken promise first)
    beyond_horizon: tuple[tuple[str, str], ...]  # promised after the horizon: not judged yet
    # lines with nothing left open appear in none of the three


def review_promises(supply: Supply, lines: Sequence[OrderLine]) -> PromiseReview:
    """Which booked lines the supply can still meet on their promised date, breaking the least important.

    Lines are served in priority order: higher tier first, then earlier booking. A line is kept when it
    fits in full on its date beside everything served before it (supply of a week serves any later date;
    tier shares do not apply: they govern new promises, and a booked promise is kept whoever's share it
    needs). Otherwise it is at risk: `quantity_short` is what it lacks on its date, and it is re-promised
    for the first week that covers it in full, which then binds the lines after it. A line no week of the
    horizon covers holds no supply. So a line never breaks while a lower-priority line due no earlier and
    for no less is kept.
    """
    lines = latest_lines(lines_of_sku(lines, supply.sku))
    # slack[k]: supply up to week k minus everything already served up to it; a line due in week d
    # fits iff its quantity is at most min(slack[d:]).
    slack = supply.on_hand + np.cumsum(np.asarray(supply.receipts, dtype=np.float64) - supply.other())
    kept: list[tuple[str, str]] = []
    at_risk: list[AtRiskLine] = []
    beyond: list[tuple[str, str]] = []
    for line in lines:
        if line.open_quantity <= TOLERANCE:
            continue
        week = promised_week(line.promised_on, supply.horizon_start)
        if week >= supply.weeks:
            beyond.append(line.key)
            continue
        if line.open_quantity <= slack[week:].min() + TOLERANCE:  # min(slack[week:]): room on its date
            slack[week:] -= line.open_quantity
            kept.append(line.key)
            continue
        room = np.minimum.accumulate(slack[::-1])[::-1]  # room[d] = min(slack[d:])
        covering = np.nonzero(room[week:] + TOLERANCE >= line.open_quantity)[0]
        new_week = week + int(covering[0]) if covering.size else None
        if new_week is not None:
            slack[new_week:] -= line.open_quantity
        short = min(line.open_quantity, line.open_quantity - max(float(room[week]), 0.0))
        at_risk.append(
            AtRiskLine(
                order_id=line.order_id,
                line_id=line.line_id,
                account_id=line.account_id,
                tier=line.tier,
                sku=line.sku,
                promised_on=line.promised_on,
                quantity=line.open_quantity,
                quantity_short=short,
                new_earliest_on=supply.horizon_start + timedelta(weeks=new_week) if new_week is not None else None,
            )
        )
    return PromiseReview(supply.sku, tuple(kept), tuple(at_risk), tuple(beyond))


def all_promises_kept(supplies: Sequence[Supply], lines: Sequence[Sequence[OrderLine]]) -> list[bool]:
    """Per SKU, whether `review_promises(supplies[i], lines[i])` keeps every open line within the horizon (puts
    none at risk), for many SKUs in a few array operations: true when the supply covers all of them at once,
    each on its promised date.

    That suffices: lines are served in priority order, and a line whose set of lines fits as a whole (from the
    week of the first one on) still fits beside any part of the others. Every line counts, even an older version
    of one (then more is asked than the review serves), so a true answer is never wrong; a false one only says
    the review is to be run."""
    if not supplies:
        return []
    weeks = max(1, *(supply.weeks for supply in supplies))
    receipts = np.zeros((len(supplies), weeks))
    beyond = np.zeros((len(supplies), weeks), dtype=bool)  # past a shorter horizon: nothing is owed there
    rows: list[int] = []
    at: list[int] = []
    quantities: list[float] = []
    strays: list[int] = []
    for row, (supply, of) in enumerate(zip(supplies, lines, strict=True)):
        receipts[row, : supply.weeks] = supply.receipts
        if supply.other_commitments:
            receipts[row, : supply.weeks] -= supply.other_commitments
        beyond[row, supply.weeks :] = True
        start = supply.horizon_start.toordinal()
        for line in of:
            if line.sku != supply.sku:
                strays.append(row)  # a wiring error the review reports
            week = max((line.promised_on.toordinal() - start) // 7, 0)  # promised_week
            if line.open_quantity > TOLERANCE and week < supply.weeks:
                rows.append(row)
                at.append(week)
                quantities.append(line.open_quantity)
    slack = np.array([supply.on_hand for supply in supplies])[:, None] + np.cumsum(receipts, axis=1)
    booked = np.zeros((len(supplies), weeks))
    np.add.at(booked, (np.array(rows, dtype=np.int64), np.array(at, dtype=np.int64)), quantities)
    # Left over by every week once all lines are served; at least 0, with room to spare for float noise
    # against the review's own tolerance.
    # Weeks before a SKU's first line owe nothing to any line (other commitments alone may overdraw them).
    first = np.full(len(supplies), weeks, dtype=np.int64)
    np.minimum.at(first, np.array(rows, dtype=np.int64), np.array(at, dtype=np.int64))
    judged = ~beyond & (np.arange(weeks)[None, :] >= first[:, None])
    left = np.where(judged, slack - np.cumsum(booked, axis=1), np.inf).min(axis=1) >= 0
    left[strays] = False
    kept: list[bool] = left.tolist()
    return kept


class ChangeKind:
    AT_RISK = "at-risk"  # newly at risk, or its shortfall or new date changed
    RESTORED = "restored"  # was at risk, is not any more (covered again, shipped or cancelled)


@dataclass(frozen=True, slots=True)
class PromiseChange:
    kind: str
    line: AtRiskLine  # the line as now at risk; for RESTORED, as it was last reported


def diff_at_risk(previous: Sequence[AtRiskLine], current: Sequence[AtRiskLine]) -> list[PromiseChange]:
    """Changes to publish between two reviews: only real ones (float noise is not a change).

    A line appearing or changing what it reports yields AT_RISK; one disappearing yields RESTORED.
    Sorted by (order_id, line_id) so the same inputs always publish in the same order.
    """
    before = {line.key: line for line in previous}
    after = {line.key: line for line in current}
    changes = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if new is None:
            assert old is not None
            changes.append(PromiseChange(ChangeKind.RESTORED, old))
        elif old is None or _differs(old, new):
            changes.append(PromiseChange(ChangeKind.AT_RISK, new))
    return changes


def _differs(old: AtRiskLine, new: AtRiskLine) -> bool:
    return (
        abs(old.quantity_short - new.quantity_short) > TOLERANCE
        or abs(old.quantity - new.quantity) > TOLERANCE
        or (old.new_earliest_on, old.promised_on, old.tier, old.account_id)
        != (new.new_earliest_on, new.promised_on, new.tier, new.account_id)
    )
