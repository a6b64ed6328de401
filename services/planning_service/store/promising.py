"""Promising: the promises at risk as last published, the allocation policy, and what a promise check or the
ATP view of one SKU reads (its item's stock, its current plan and its open lines)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import any_, delete, func, select, text, true, type_coerce
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.planning_service import tables
from services.planning_service.domain import SkuPlan
from services.planning_service.domain.allocation import NO_PROTECTION, AllocationPolicy
from services.planning_service.domain.orders import OrderLine, Tier
from services.planning_service.domain.promises import AtRiskLine
from services.planning_service.store.customers import OPEN_LINES, order_line_from_row, sku_array
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


# A promise check's open lines of its item's SKU as one JSON array (null when none), through the index of open
# lines by SKU: the rows of `OPEN_LINES` as objects by column name, of the item of the enclosing query. The
# names are bound as plain text: a column's name is a `quoted_name`, whose parameter PostgreSQL cannot type.
ITEM_OPEN_LINES_JSON = (
    OPEN_LINES.with_only_columns(
        func.jsonb_agg(
            func.jsonb_build_object(
                *(part for name, column in OPEN_LINES.selected_columns.items() for part in (str(name), column))
            )
        )
    )
    .where(tables.order_lines.c.sku == tables.items.c.sku)
    .scalar_subquery()
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
                type_coerce(ITEM_OPEN_LINES_JSON, JSONB).label("lines"),
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


def _line_from_json(line: Mapping[str, Any]) -> OrderLine:
    """A line of `ITEM_OPEN_LINES_JSON`, its values made what a row of `OPEN_LINES` has (JSON has dates as text)."""
    return order_line_from_row(
        (
            line["order_id"],
            line["line_id"],
            line["account_id"],
            line["tier"],
            line["sku"],
            float(line["open_quantity"]),
            date.fromisoformat(line["promised_on"]),
            datetime.fromisoformat(line["booked_at"]),
            int(line["version"]),
        )
    )


def policy_from_json(reserve_pct: Mapping[str, float], release_days: int) -> AllocationPolicy:
    return AllocationPolicy({Tier(tier): float(pct) for tier, pct in reserve_pct.items()}, release_days)
