"""Promising: the promises at risk as last published, the allocation policy, and what a promise check or the
ATP view of one SKU reads (its item's stock, its current plan and its open lines)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import any_, delete, func, literal, select, text, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import SkuPlan
from services.planning_service.domain.allocation import NO_PROTECTION, AllocationPolicy
from services.planning_service.domain.orders import UNKNOWN_ACCOUNT_TIER, OrderLine, Tier
from services.planning_service.domain.promises import AtRiskLine
from services.planning_service.store.customers import open_line, sku_array
from services.planning_service.store.inputs import plan_from_json

# The reviewed SKUs' at-risk lines, in one statement. A line that moved to another SKU is at risk there now,
# not under the SKU it left.
SAVE_AT_RISK = text(
    f"""
    INSERT INTO {tables.promises_at_risk.fullname} AS p (order_id, line_id, sku, account_id, tier, promised_on,
        quantity, quantity_short, new_earliest_on, plan_version)
    SELECT * FROM unnest(
        CAST(:order_ids AS varchar[]), CAST(:line_ids AS varchar[]), CAST(:skus AS varchar[]),
        CAST(:account_ids AS varchar[]), CAST(:tiers AS varchar[]), CAST(:promised_on AS date[]),
        CAST(:quantities AS float8[]), CAST(:short AS float8[]), CAST(:earliest AS date[]),
        CAST(:plan_versions AS integer[])
    )
    ON CONFLICT (order_id, line_id) DO UPDATE SET
        sku = excluded.sku, account_id = excluded.account_id, tier = excluded.tier,
        promised_on = excluded.promised_on, quantity = excluded.quantity, quantity_short = excluded.quantity_short,
        new_earliest_on = excluded.new_earliest_on, plan_version = excluded.plan_version, updated_at = now()
    """
)


@dataclass(frozen=True)
class StoredPolicy:
    policy: AllocationPolicy
    revision: int  # 0: never set, the default that protects nothing
    updated_at: datetime | None


@dataclass(frozen=True)
class PromisingView:
    """What promising needs of one SKU: its stock, its current plan, its open order lines, the allocation
    policy and (when asked for) the tier planning knows for an account."""

    sku: str
    on_hand: float
    plan: SkuPlan
    plan_version: int
    lines: list[OrderLine]
    policy: StoredPolicy
    account_segment: str | None = None


def at_risk_from_row(row: Any) -> AtRiskLine:
    return AtRiskLine(
        order_id=row.order_id,
        line_id=row.line_id,
        account_id=row.account_id,
        tier=Tier(row.tier),
        sku=row.sku,
        promised_on=row.promised_on,
        quantity=row.quantity,
        quantity_short=row.quantity_short,
        new_earliest_on=row.new_earliest_on,
    )


class PromisingSql:
    session: AsyncSession

    async def promises_at_risk(self, skus: Collection[str] | None) -> dict[str, list[AtRiskLine]]:
        """The lines last published as at risk, by SKU (of the given SKUs, or all)."""
        table = tables.promises_at_risk
        query = select(table).order_by(table.c.order_id, table.c.line_id)
        if skus is not None:
            query = query.where(table.c.sku == any_(sku_array(skus)))
        found: dict[str, list[AtRiskLine]] = defaultdict(list)
        for row in (await self.session.execute(query)).all():
            found[row.sku].append(at_risk_from_row(row))
        return dict(found)

    async def save_promises_at_risk(
        self, reviewed: Mapping[str, Sequence[AtRiskLine]], *, plan_versions: Mapping[str, int]
    ) -> None:
        """Each reviewed SKU's at-risk set replaces the one stored for it."""
        if not reviewed:
            return
        table = tables.promises_at_risk
        await self.session.execute(delete(table).where(table.c.sku == any_(sku_array(reviewed))))
        # One row per line (the last one reviewed wins, as rows written one after the other would).
        rows = {line.key: (sku, line) for sku, lines in reviewed.items() for line in lines}
        if rows:
            await self.session.execute(
                SAVE_AT_RISK,
                {
                    "order_ids": [line.order_id for _, line in rows.values()],
                    "line_ids": [line.line_id for _, line in rows.values()],
                    "skus": [sku for sku, _ in rows.values()],
                    "account_ids": [line.account_id for _, line in rows.values()],
                    "tiers": [line.tier.value for _, line in rows.values()],
                    "promised_on": [line.promised_on for _, line in rows.values()],
                    "quantities": [line.quantity for _, line in rows.values()],
                    "short": [line.quantity_short for _, line in rows.values()],
                    "earliest": [line.new_earliest_on for _, line in rows.values()],
                    "plan_versions": [plan_versions[sku] for sku, _ in rows.values()],
                },
            )

    async def allocation_policy(self) -> StoredPolicy:
        table = tables.allocation_policy
        row = (await self.session.execute(select(table))).first()
        if row is None:
            return StoredPolicy(NO_PROTECTION, 0, None)
        return StoredPolicy(policy_from_json(row.reserve_pct, row.release_days), row.revision, row.updated_at)

    async def save_allocation_policy(self, policy: AllocationPolicy) -> StoredPolicy:
        table = tables.allocation_policy
        statement = insert(table).values(
            singleton=True,
            reserve_pct={tier.value: pct for tier, pct in policy.reserve_pct.items()},
            release_days=policy.release_days,
            revision=1,
        )
        row = (
            await self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=[table.c.singleton],
                    set_={
                        "reserve_pct": statement.excluded.reserve_pct,
                        "release_days": statement.excluded.release_days,
                        "revision": table.c.revision + 1,
                        "updated_at": datetime.now().astimezone(),
                    },
                ).returning(table.c.revision, table.c.updated_at)
            )
        ).one()
        return StoredPolicy(policy, row.revision, row.updated_at)

    async def promising_view(self, sku: str, account_id: str | None = None) -> PromisingView | None:
        """The SKU's stock, current plan and open lines (as one JSON array, through the index of open lines
        by SKU), the policy and the account's tier, in one statement: a promise check answers in
        milliseconds. None without an item or a plan."""
        items, plans, accounts, policy = tables.items, tables.plans, tables.accounts, tables.allocation_policy
        query = (
            select(
                items.c.on_hand,
                plans.c.plan_version,
                plans.c.weeks,
                accounts.c.segment,
                policy.c.reserve_pct,
                policy.c.release_days,
                policy.c.revision,
                policy.c.updated_at,
                type_coerce(_open_lines_json(items.c.sku), JSONB).label("lines"),
            )
            .select_from(
                items.join(plans, plans.c.sku == items.c.sku)
                .outerjoin(accounts, accounts.c.account_id == account_id)
                .outerjoin(policy, true())
            )
            .where(items.c.sku == sku)
        )
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        stored = (
            StoredPolicy(policy_from_json(row.reserve_pct, row.release_days), row.revision, row.updated_at)
            if row.revision is not None
            else StoredPolicy(NO_PROTECTION, 0, None)
        )
        lines = [_line_from_json(line) for line in row.lines or ()]
        plan = plan_from_json(sku, row.weeks)
        return PromisingView(sku, row.on_hand, plan, row.plan_version, lines, stored, row.segment)


def _open_lines_json(sku: Any) -> Any:
    """The open lines of `sku` as a JSON array (null when none), with their tier as in open_lines_query."""
    lines, orders, accounts = tables.order_lines, tables.orders, tables.accounts.alias("line_accounts")
    tier = func.coalesce(accounts.c.segment, orders.c.tier, literal(UNKNOWN_ACCOUNT_TIER.value))
    line = func.jsonb_build_object(
        "order_id",
        lines.c.order_id,
        "line_id",
        lines.c.line_id,
        "account_id",
        orders.c.account_id,
        "tier",
        tier,
        "sku",
        lines.c.sku,
        "open_quantity",
        lines.c.open_quantity,
        "promised_on",
        lines.c.promised_on,
        "booked_at",
        orders.c.booked_at,
        "version",
        orders.c.version,
    )
    return (
        select(func.jsonb_agg(line))
        .select_from(
            lines.join(orders, orders.c.order_id == lines.c.order_id).outerjoin(
                accounts, accounts.c.account_id == orders.c.account_id
            )
        )
        .where(lines.c.sku == sku, open_line(lines, orders))
        .scalar_subquery()
    )


def _line_from_json(line: Mapping[str, Any]) -> OrderLine:
    return OrderLine(
        order_id=line["order_id"],
        line_id=line["line_id"],
        account_id=line["account_id"],
        tier=Tier(line["tier"]),
        sku=line["sku"],
        open_quantity=float(line["open_quantity"]),
        promised_on=date.fromisoformat(line["promised_on"]),
        booked_at=datetime.fromisoformat(line["booked_at"]),
        version=int(line["version"]),
    )


def policy_from_json(reserve_pct: Mapping[str, float], release_days: int) -> AllocationPolicy:
    return AllocationPolicy({Tier(tier): float(pct) for tier, pct in reserve_pct.items()}, release_days)
