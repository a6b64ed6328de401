"""SQL of the per-line promise bookkeeping: the newest promise event applied to each booked order line."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.returns_service import tables
from services.returns_service.domain import PromiseMark

promise_lines = tables.promise_lines


class PromisesStore:
    session: AsyncSession

    async def promise_mark(self, order_id: str, line_id: str) -> PromiseMark | None:
        """The newest promise event applied to the line. Callers hold the line's alert lock (`open_alert_for`
        of its subject), so the read and the following save take turns with other events of the line."""
        query = select(promise_lines).where(promise_lines.c.order_id == order_id, promise_lines.c.line_id == line_id)
        row = (await self.session.execute(query)).first()
        return PromiseMark(row.sku, row.plan_version, row.at_risk) if row else None

    async def save_promise_mark(self, order_id: str, line_id: str, mark: PromiseMark) -> None:
        values = {"sku": mark.sku, "plan_version": mark.plan_version, "at_risk": mark.at_risk}
        statement = insert(promise_lines).values(order_id=order_id, line_id=line_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[promise_lines.c.order_id, promise_lines.c.line_id],
                set_={**values, "updated_at": func.now()},
            )
        )
