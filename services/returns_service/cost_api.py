"""HTTP API of cost-to-serve: the activity rates, an account's ledger, and the whale curve with totals per segment."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from services.returns_service import cost_handlers, queries
from services.returns_service.cost_refresh import refresh_wake
from services.returns_service.cost_schemas import AccountCostRead, CostRatesPut, CostRatesRead, CostToServeRead
from services.returns_service.costing import CostRates, add_months, month_of
from services.returns_service.domain import Segment
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import SqlStore
from shared.auth import ApiKey, Scope, require
from shared.errors import invalid, not_found
from shared.service import RuntimeDep, UnitOfWorkDep
from shared.types import DATE_RANGE, PlanDate

router = APIRouter(prefix="/v1", tags=["cost-to-serve"])

CanReadCosts = Annotated[ApiKey, Depends(require(Scope.COSTS_READ))]
CanWriteCosts = Annotated[ApiKey, Depends(require(Scope.COSTS_WRITE))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown API key"},
    403: {"description": "missing scope"},
    422: {"description": "invalid request"},
}
# The months one request may span (a month of a ten-year view is still one row per account).
MAX_MONTHS = 120
DEFAULT_MONTHS = 12
From = Annotated[
    PlanDate | None,
    Query(alias="from", description=f"first month (any day of it; {DATE_RANGE}); default: 11 months before `to`"),
]
To = Annotated[PlanDate | None, Query(alias="to", description="last month (any day of it); default: this month")]
IdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")]


def _settings(request: Request) -> ReturnsSettings:
    settings = request.app.state.settings
    assert isinstance(settings, ReturnsSettings)
    return settings


def _months(first: date | None, last: date | None, today: date) -> tuple[date, date]:
    high = month_of(last or today)
    low = month_of(first) if first else add_months(high, -(DEFAULT_MONTHS - 1))
    if low > high:
        raise invalid("query.from", "must not be after `to`")
    if (high.year - low.year) * 12 + high.month - low.month >= MAX_MONTHS:
        raise invalid("query.from", f"at most {MAX_MONTHS} months from `to`")
    return low, high


@router.put("/cost-rates", response_model=CostRatesRead, responses=PROBLEMS)
async def put_cost_rates(
    body: CostRatesPut, uow: UnitOfWorkDep, runtime: RuntimeDep, key: CanWriteCosts
) -> CostRatesRead:
    """Set the cost of each activity (an activity left out takes its documented default). The rates price the
    counted drivers when the ledger is read: a change re-prices every month, history included, and the
    accounts' alerts are re-evaluated right after (in the background, one account at a time)."""
    stored = await cost_handlers.put_cost_rates(SqlStore(uow.session), CostRates(**body.model_dump()), by=key.name)
    await uow.commit()
    refresh_wake(runtime).set()
    return queries.rates_read(stored)


@router.get("/cost-rates", response_model=CostRatesRead, responses=PROBLEMS)
async def get_cost_rates(uow: UnitOfWorkDep, _: CanReadCosts) -> CostRatesRead:
    return queries.rates_read(await SqlStore(uow.session).stored_rates())


@router.get(
    "/accounts/{account_id}/cost-to-serve",
    response_model=AccountCostRead,
    responses={**PROBLEMS, 404: {"description": "an account the service knows nothing of"}},
)
async def account_cost_to_serve(
    account_id: IdPath, uow: UnitOfWorkDep, request: Request, _: CanReadCosts, first: From = None, last: To = None
) -> AccountCostRead:
    """Per month: revenue, cost of goods, each cost pool with its driver count and amount, cost-to-serve,
    contribution and contribution %; and the tier the account's behaviour suggests beside its own."""
    settings = _settings(request)
    today = settings.today()
    low, high = _months(first, last, today)
    found = await queries.account_cost_to_serve(
        SqlStore(uow.session), account_id, low, high, _as_of(high, today), settings.mapping_rule()
    )
    if found is None:
        raise not_found("account", account_id)
    return found


@router.get("/cost-to-serve", response_model=CostToServeRead, responses=PROBLEMS)
async def cost_to_serve(
    uow: UnitOfWorkDep,
    request: Request,
    _: CanReadCosts,
    first: From = None,
    last: To = None,
    segment: Segment | None = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="accounts shown (the curve spans them all)")] = 500,
) -> CostToServeRead:
    """Accounts ranked by contribution with the cumulative share (the whale curve), totals per segment, and each
    account's suggested segment beside its assigned one."""
    settings = _settings(request)
    today = settings.today()
    low, high = _months(first, last, today)
    return await queries.cost_to_serve(
        SqlStore(uow.session), low, high, segment, _as_of(high, today), settings.mapping_rule(), limit
    )


def _as_of(last_month: date, today: date) -> date:
    """Market mapping looks at the window ending with the last month asked for (today, when that is now)."""
    return today if last_month >= month_of(today) else add_months(last_month, 1) - timedelta(days=1)
