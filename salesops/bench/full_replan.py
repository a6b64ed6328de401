"""Full replan through the database: `POST /v1/replan` on the planning service (the path the week rollover
takes: load every SKU's inputs, the vectorised core, diff against the stored plans, save revisions and
publish their events through the outbox), timed, with the planning process's peak RSS, its CPU, the
database's CPU and statements.

Seeded straight into planning's tables with server-side SQL (items, 16 weeks of daily volumes, one
promotion per 20 SKUs), then two replans: the first writes every SKU's first plan, the second follows a
change of every item's stock, so every plan is revised (the shape of a week rollover). A process that grows
past `RSS_LIMIT` is stopped, and the figure says so, rather than let it take the shared machine down.

Every seeded SKU's baseline model is fitted and stored before anything is timed (`fit_models`: the service
fitter's own reads, fit and rows, in worker processes of the bench, re-planning nothing), so the service's
fitter finds nothing to fit and stays idle through both replans, which apply the stored models. That is what
a replan costs: a `POST /v1/replan` or a stock change meets SKUs whose models are fitted, and although the
fitter refits every SKU after a week rollover, beside the rollover's replan, that fit and the re-plans it
triggers are the fitter's work (`forecast_fit` times the fit), not the replan's. Left to fit the seeded SKUs
during the replans (as after a first deployment), the fitter re-planned a varying share of them (up to 1,500
of 10,000 more or less from run to run) inside the timed stretch, on the same two cores, so neither the
seconds nor the planning CPU per SKU were comparable between runs. Each run's details count the fitter's
re-plans during each replan (`fitter_replans`, 0 when it stayed idle), the seconds the fit took and the model
rows it stored (`models`). Models of the same SKU count are fitted once per bench run and copied into the next
database seeded alike.

Peak RSS is the service process's own (the replan's memory); the figure with its child processes is given
beside it (with the fitter idle, no worker process is started). Before the revision every table the first
replan wrote, and the items it changes, are vacuumed and analysed, as autovacuum would leave them, so that it
does not start on them while the revision is timed; the raw baseline's database likewise.

Each replan's raw baseline is the storage work alone, in a sibling database seeded the same way: the rows the
service wrote in that replan (its revisions and events, read back by the replan's driver id), held in memory as
the driver takes them (so the same bytes), written to the same tables in one transaction on one asyncpg
connection (`copy_records_to_table`; the revised plans as one `unnest` upsert), with the same weekly history
read (and, for the revision, the stored plans), no planning and no framework, once the service stopped. Its
seconds and database CPU stand beside the service's. The service's database is dropped once its rows are read
back, and the sibling once its raw runs are done (a quick run keeps both: the bench's PostgreSQL takes them with
it when it stops, and each drop would cost a checkpoint, seconds at any size).

The service stores plans as it does by default (`expanded`); at the goal size the two replans run again with
`SALESOPS_PLANNING_PLAN_STORAGE=compact`. `BENCH_FULL_REPLAN_SIZES` (SKU counts, comma-separated, e.g. `10000`
or `10_000,50_000`; a number written with thousands commas, `10,000`, is refused as ambiguous) and
`BENCH_FULL_REPLAN_STORAGE` (`expanded`, `compact` or both, comma-separated; when unset, compact at the smallest
size only, the goal size) choose what runs. `--quick` runs `QUICK_SKUS` SKUs (or the sizes chosen), both
storages, and has the service re-plan them `QUICK_CHUNK_SKUS` at a time, so that its replans still go through
several chunks as at the goal size; at whatever size, a quick run keeps its databases."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import re
import time
import uuid
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from salesops.bench.harness import MIB, Environment, Harness, Process, own_label, wait_until
from salesops.bench.model import Figure, MeasureResult
from salesops.bench.profile import Profiler
from services.planning_service.domain import PlanningParams
from services.planning_service.domain.forecast import MAX_HISTORY_WEEKS
from services.planning_service.fitter import CHUNK_SKUS, FIT_WORKER_NICENESS, FITTED, fit_chunk, plan_fits, save_fits
from services.planning_service.store import SqlStore
from services.planning_service.store.inputs import _weekly_units_sql
from shared.events import CannibalizationData, EventType, PromotionData, PromotionItemData

HISTORY_DAYS = 112
PROMOTION_EVERY = 20
RSS_LIMIT = 4 * 1024 * MIB
GOAL_SECONDS = 3.0
GOAL_SECONDS_SIZE = 10_000
GOAL_MB = 300.0
# `--quick`: SKUs of the one size, and the chunk the service re-plans them in (several chunks, as at full size).
QUICK_SKUS = 250
QUICK_CHUNK_SKUS = 100
# Worker processes of the bench's own fit of the seeded SKUs' models (before anything is timed).
FIT_WORKERS = 2
# The tables a replan writes (and the items the revision's stock change updates): vacuumed and analysed before a
# timed revision, in the service's database and in the raw baseline's.
WRITTEN_TABLES = (
    "planning.items",
    "planning.plans",
    "planning.plan_revisions",
    "planning.outbox",
    "planning.forecast_snapshots",
    "planning.drivers",
)

_ITEMS = """
INSERT INTO planning.items (sku, name, on_hand, safety_stock, lot_size, weekly_capacity, frozen_weeks,
                            baseline_weekly_demand, revision)
SELECT 'SKU-' || lpad(n::text, 6, '0'), 'Item ' || n, 50 + n % 400, 20 + n % 60, (ARRAY[1, 10, 50])[1 + n % 3],
       CASE WHEN n % 3 = 0 THEN NULL ELSE 300 + n % 500 END, CASE WHEN n % 4 = 0 THEN 2 ELSE 0 END, NULL, 1
FROM generate_series(0, $1 - 1) AS n
"""
_VOLUMES = """
INSERT INTO planning.daily_volumes (sku, day, units_ordered, units_shipped, units_backordered)
SELECT 'SKU-' || lpad(n::text, 6, '0'), $2::date - d, 10 + (n * 7 + d * 13) % 60, 8 + (n * 7 + d * 13) % 55,
       (n + d) % 3
FROM generate_series(0, $1 - 1) AS n, generate_series(1, $3) AS d
"""


def promotion_rows(count: int, today: Any) -> list[tuple[str, int, str, str, str]]:
    rows = []
    for n in range(0, count, PROMOTION_EVERY):
        starts = today + timedelta(weeks=1 + n % 20, days=n % 7)
        data = PromotionData(
            promotion_id=f"P-{n:06d}",
            name=f"Campaign {n}",
            starts_on=starts,
            ends_on=starts + timedelta(days=2 + n % 9),
            items=[PromotionItemData(sku=f"SKU-{n:06d}", uplift_pct=10 + n % 70)],
            post_promo_dip_pct=20,
            post_promo_dip_weeks=2,
            cannibalized=[CannibalizationData(sku=f"SKU-{n + 1:06d}", pct=10)] if n + 1 < count else [],
        )
        rows.append((data.promotion_id, 1, "planned", data.model_dump_json(), f"bench-{n}"))
    return rows


async def seed(env: Environment, count: int) -> float:
    """Items, history and promotions of `count` SKUs; returns the seconds it took."""
    started = time.perf_counter()
    today = datetime.now(UTC).date()
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.execute(_ITEMS, count)
        await conn.execute(_VOLUMES, count, today, HISTORY_DAYS)
        await conn.executemany(
            "INSERT INTO planning.promotions (promotion_id, version, status, body, last_event_id)"
            " VALUES ($1, $2, $3, $4::jsonb, $5)",
            promotion_rows(count, today),
        )
        # Vacuumed and analysed as autovacuum would leave tables this size, so that it does not start on them (some
        # 5.6 million inserted rows at 50,000 SKUs) while a replan is timed.
        await conn.execute("VACUUM (ANALYZE) planning.items, planning.daily_volumes, planning.promotions")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def _fit_lane(
    sessions: async_sessionmaker[AsyncSession], horizon: date, executor: Executor, params: PlanningParams
) -> int:
    """One fitter's work, chunk after chunk as the service's fitter goes (`fitter.fit_next_chunk`): lease, read,
    fit in a worker process, store the models under the SKUs' locks and release the lease, but re-plan nothing.
    Returns the number of SKUs it took."""
    holder = f"bench:{uuid.uuid4().hex[:12]}"
    loop = asyncio.get_running_loop()
    taken = 0
    while True:
        async with sessions() as session:
            store = SqlStore(session)
            skus = await store.lease_skus_to_fit(horizon, CHUNK_SKUS, holder=holder, lease_s=3600)
            await session.commit()
            if not skus:
                return taken
            loaded = await store.fitting_inputs(skus, horizon)
        plan = plan_fits(loaded, horizon)
        models = (
            await loop.run_in_executor(executor, fit_chunk, plan.to_fit, horizon, plan.promotions, params)
            if plan.to_fit
            else []
        )
        async with sessions() as session:
            store = SqlStore(session)
            await save_fits(store, plan, models, loaded.inputs)
            await store.release_fit_leases(skus, holder=holder)
            await session.commit()
        taken += len(skus)


_MODEL_COLUMNS = (
    "sku",
    "method",
    "model",
    "origin",
    "history_digest",
    "fitted_at",
    "history_changes",
    "checked_changes",
)


async def fit_models(
    env: Environment, fitted: dict[tuple[int, date], list[tuple[Any, ...]]], count: int
) -> tuple[float, int]:
    """Fit and store every seeded SKU's baseline model for the current week, as the service's fitter would, so
    that it has none left to fit; returns the seconds it took and the model rows stored. Models of `count` SKUs
    already fitted for this week in another database seeded alike (kept in `fitted`) are copied instead."""
    started = time.perf_counter()
    today = datetime.now(UTC).date()
    horizon = today - timedelta(days=today.weekday())
    conn = await asyncpg.connect(env.dsn)
    try:
        rows = fitted.get((count, horizon))
        if rows is None:
            engine = create_async_engine(env.database_url, pool_size=FIT_WORKERS)
            executor = ProcessPoolExecutor(
                FIT_WORKERS,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=os.nice,
                initargs=(FIT_WORKER_NICENESS,),
            )
            try:
                sessions = async_sessionmaker(engine, expire_on_commit=False)
                lanes = [_fit_lane(sessions, horizon, executor, PlanningParams()) for _ in range(FIT_WORKERS)]
                await asyncio.gather(*lanes)
            finally:
                executor.shutdown(cancel_futures=True)
                await engine.dispose()
            columns = ", ".join(_MODEL_COLUMNS)
            rows = [tuple(r) for r in await conn.fetch(f"SELECT {columns} FROM planning.baseline_models")]
            fitted[(count, horizon)] = rows
        else:
            await conn.copy_records_to_table(
                "baseline_models", schema_name="planning", columns=_MODEL_COLUMNS, records=rows
            )
        await conn.execute("VACUUM (ANALYZE) planning.baseline_models, planning.fit_leases")
    finally:
        await conn.close()
    return time.perf_counter() - started, len(rows)


async def vacuum_written(env: Environment) -> None:
    """Vacuum and analyse what a replan wrote (`WRITTEN_TABLES`), as autovacuum would soon: so that it does not
    start on them while the next replan is timed."""
    conn = await asyncpg.connect(env.dsn)
    try:
        await conn.execute(f"VACUUM (ANALYZE) {', '.join(WRITTEN_TABLES)}")
    finally:
        await conn.close()


async def _fitter_replans(env: Environment, since: datetime) -> int:
    """SKUs the service's fitter re-planned since `since` (0: it stayed idle)."""
    conn = await asyncpg.connect(env.dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT coalesce(sum(cardinality(skus)), 0) FROM planning.drivers"
                " WHERE event_type = $1 AND received_at >= $2",
                FITTED,
                since,
            )
        )
    finally:
        await conn.close()


async def _outbox_drained(env: Environment) -> bool:
    conn = await asyncpg.connect(env.dsn)
    try:
        return not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM planning.outbox WHERE published_at IS NULL)")
    finally:
        await conn.close()


async def replan(
    harness: Harness,
    env: Environment,
    planning: Process,
    count: int,
    profiler: Profiler | None = None,
    *,
    label: str = "",
) -> dict[str, Any]:
    """One metered `POST /v1/replan`, watched for RSS; the outbox it fills is drained before returning."""
    own = own_label(planning.label)
    idle = harness.sampler.latest.get(own, 0)
    harness.sampler.reset_peak(planning.label)
    aborted = False
    error = ""

    async def watchdog() -> None:
        nonlocal aborted
        while True:
            if planning.rss_bytes() > RSS_LIMIT:
                aborted = True
                # Not SIGTERM: uvicorn would let the request that grows finish first.
                planning.popen.kill()
                return
            await asyncio.sleep(0.1)

    async with harness.metered(env, {"planning": planning.popen.pid}) as meter:
        guard = asyncio.create_task(watchdog())
        if profiler is not None:
            profiler.start(label or f"planning-{count}", planning.popen.pid, 600)
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(base_url=planning.url, headers=env.headers("planner"), timeout=900) as c:
                response = await c.post("/v1/replan")
            seconds = time.perf_counter() - started
        except httpx.HTTPError as exc:
            if not aborted:
                raise
            seconds = time.perf_counter() - started
            response = None
            error = repr(exc)
        finally:
            guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await guard
            if profiler is not None:
                await profiler.finish(stop=True)
    peak = max(harness.sampler.peak.get(own, 0), planning.rss_bytes(children=False))
    peak_with_workers = max(harness.sampler.peak.get(planning.label, 0), planning.rss_bytes())
    usage = meter.result()
    if aborted or response is None:
        return {
            "aborted": True,
            "seconds": round(seconds, 3),
            "peak_rss_mb": round(peak / MIB, 1),
            "peak_rss_with_workers_mb": round(peak_with_workers / MIB, 1),
            "error": error,
        }
    response.raise_for_status()
    answer = response.json()
    drained_at = time.perf_counter()
    drained = await wait_until(lambda: _outbox_drained(env), timeout_s=600, interval_s=0.2)
    return {
        "aborted": False,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak / MIB, 1),
        "peak_rss_with_workers_mb": round(peak_with_workers / MIB, 1),
        "idle_rss_mb": round(idle / MIB, 1),
        "answer": answer,
        "usage": usage.per(count),
        "outbox_drained_s": round(time.perf_counter() - drained_at, 2) if drained else None,
    }


# The columns the service writes (the others keep their defaults), as the raw baseline writes them again.
_PLAN_COLUMNS = (
    "sku",
    "plan_version",
    "horizon_start",
    "generated_at",
    "weeks",
    "exceptions",
    "total_forecast",
    "total_mps",
    "shortfall_weeks",
)
_REVISION_COLUMNS = ("sku", "plan_version", "generated_at", "driver_event_ids", "changes")
_OUTBOX_COLUMNS = ("event_id", "event_type", "topic", "key", "payload")
_SNAPSHOT_COLUMNS = ("sku", "week_start", "forecast")
_UPSERT_PLANS = """
INSERT INTO planning.plans (sku, plan_version, horizon_start, generated_at, weeks, exceptions, total_forecast,
                            total_mps, shortfall_weeks)
SELECT * FROM unnest($1::text[], $2::int[], $3::date[], $4::timestamptz[], $5::json[], $6::jsonb[], $7::float8[],
                     $8::float8[], $9::int[])
ON CONFLICT (sku) DO UPDATE SET
    plan_version = excluded.plan_version, horizon_start = excluded.horizon_start,
    generated_at = excluded.generated_at, weeks = excluded.weeks, exceptions = excluded.exceptions,
    total_forecast = excluded.total_forecast, total_mps = excluded.total_mps,
    shortfall_weeks = excluded.shortfall_weeks
"""


@dataclass
class Written:
    """The rows one replan of the service wrote, read back as the driver returns them (JSON as text)."""

    plans: list[tuple[Any, ...]] = field(default_factory=list)
    revisions: list[tuple[Any, ...]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    snapshots: list[tuple[Any, ...]] = field(default_factory=list)

    def sizes(self) -> dict[str, Any]:
        return {
            "plans": len(self.plans),
            "plans_weeks_mb": round(sum(len(r[4]) for r in self.plans) / MIB, 1),
            "revisions": len(self.revisions),
            "revisions_changes_mb": round(sum(len(r[4]) for r in self.revisions) / MIB, 1),
            "outbox": len(self.outbox),
            "outbox_payload_mb": round(sum(len(r[4]) for r in self.outbox) / MIB, 1),
            "snapshots": len(self.snapshots),
        }


async def _outbox_mark(env: Environment) -> tuple[int, datetime]:
    """The last outbox id and the database's clock before a replan: what it writes comes after both."""
    conn = await asyncpg.connect(env.dsn)
    try:
        row = await conn.fetchrow("SELECT coalesce(max(id), 0) AS id, clock_timestamp() AS now FROM planning.outbox")
        return int(row["id"]), row["now"]
    finally:
        await conn.close()


async def read_back(env: Environment, mark: tuple[int, datetime], end: tuple[int, datetime], driver: str) -> Written:
    """The plans, revisions, outbox rows and forecast snapshots the replan `driver` wrote between `mark` and `end`:
    its revisions are those naming it, its `mps.revised` events those carrying its id, so what anything else
    re-plans meanwhile (the fitter, were it not idle: `fitter_replans`) is left out. A SKU revised again since has
    its newer plan row read instead of the replan's (the same kind and about the same size of row)."""
    last_id, since = mark
    end_id, _ = end
    conn = await asyncpg.connect(env.dsn)
    try:
        revisions = await conn.fetch(
            "SELECT sku, plan_version, generated_at, driver_event_ids, changes::text AS changes"
            " FROM planning.plan_revisions WHERE generated_at >= $1 AND $2 = ANY(driver_event_ids) ORDER BY sku",
            since,
            driver,
        )
        plans = await conn.fetch(
            "SELECT sku, plan_version, horizon_start, generated_at, weeks::text AS weeks,"
            " exceptions::text AS exceptions, total_forecast, total_mps, shortfall_weeks"
            " FROM planning.plans WHERE sku = ANY($1::text[]) ORDER BY sku",
            [r["sku"] for r in revisions],
        )
        outbox = await conn.fetch(
            "SELECT event_id, event_type, topic, key, payload FROM planning.outbox"
            " WHERE id > $1 AND id <= $2 AND (event_type <> $3 OR position($4::bytea IN payload) > 0) ORDER BY id",
            last_id,
            end_id,
            EventType.MPS_REVISED.value,
            orjson.dumps(driver),
        )
        snapshots = await conn.fetch(
            "SELECT sku, week_start, forecast FROM planning.forecast_snapshots WHERE taken_at >= $1 ORDER BY sku",
            since,
        )
    finally:
        await conn.close()
    return Written(
        [tuple(r) for r in plans],
        [tuple(r) for r in revisions],
        [tuple(r) for r in outbox],
        [tuple(r) for r in snapshots],
    )


async def raw_storage(harness: Harness, env: Environment, written: Written, *, revised: bool) -> dict[str, Any]:
    """The raw baseline of one replan: `written` stored again in `env` (seeded as the service's database, holding
    the plans before that replan) by the plainest fastest means, with the history read, timed and metered. Every
    row goes over the wire whole: with expanded storage the service sends an `mps.revised` event's changes once,
    in its revision, and has the server copy them into the outbox row, so raw sends some bytes the service does
    not (and the server does no copying)."""
    since = datetime.now(UTC).date()
    since -= timedelta(days=since.weekday(), weeks=MAX_HISTORY_WEEKS)
    conn = await asyncpg.connect(env.dsn)
    try:
        async with harness.metered(env, {"bench": os.getpid()}) as meter:
            started = time.perf_counter()
            async with conn.transaction():
                history = await conn.fetch(_weekly_units_sql(False, False), since)
                stored = (
                    await conn.fetch("SELECT sku, plan_version, weeks::text, exceptions::text FROM planning.plans")
                    if revised
                    else []
                )
                if revised and written.plans:
                    await conn.execute(_UPSERT_PLANS, *(list(column) for column in zip(*written.plans, strict=True)))
                else:
                    await conn.copy_records_to_table(
                        "plans", schema_name="planning", columns=_PLAN_COLUMNS, records=written.plans
                    )
                await conn.copy_records_to_table(
                    "plan_revisions", schema_name="planning", columns=_REVISION_COLUMNS, records=written.revisions
                )
                await conn.copy_records_to_table(
                    "outbox", schema_name="planning", columns=_OUTBOX_COLUMNS, records=written.outbox
                )
                if written.snapshots:
                    await conn.copy_records_to_table(
                        "forecast_snapshots",
                        schema_name="planning",
                        columns=_SNAPSHOT_COLUMNS,
                        records=written.snapshots,
                    )
            seconds = time.perf_counter() - started
    finally:
        await conn.close()
    count = max(len(written.plans), 1)
    return {
        "seconds": round(seconds, 3),
        "history_skus": len(history),
        "stored_plans_read": len(stored),
        "written": written.sizes(),
        "usage": meter.result().per(count),
    }


async def one_size(
    harness: Harness,
    count: int,
    storage: str = "expanded",
    fitted: dict[tuple[int, date], list[tuple[Any, ...]]] | None = None,
    *,
    chunk_skus: int | None = None,
    keep_databases: bool = False,
) -> dict[str, Any]:
    """Both replans of `count` SKUs with `storage`, each beside its raw baseline; `chunk_skus`, when given, is the
    service's replan chunk (`SALESOPS_PLANNING_REPLAN_CHUNK_SKUS`; its default otherwise). The two databases are
    dropped when done with, unless `keep_databases`."""
    env = await harness.environment()
    seeded_s = await seed(env, count)
    fit_s, models = await fit_models(env, {} if fitted is None else fitted, count)
    # The raw baseline's database, seeded alike: the same history to read, the same tables to write.
    raw_env = await harness.sibling(env)
    await seed(raw_env, count)
    settings = {"SALESOPS_PLANNING_PLAN_STORAGE": storage}
    if chunk_skus is not None:
        settings["SALESOPS_PLANNING_REPLAN_CHUNK_SKUS"] = str(chunk_skus)
    planning = await harness.service("planning", env, **settings)
    runs: dict[str, Any] = {
        "skus": count,
        "storage": storage,
        "seed_s": round(seeded_s, 1),
        "fit_s": round(fit_s, 1),
        "models": models,
    }
    if chunk_skus is not None:
        runs["replan_chunk_skus"] = chunk_skus
    profiler = harness.profiler("full_replan") if count <= GOAL_SECONDS_SIZE and storage == "expanded" else None
    written: dict[str, Written] = {}
    with harness.running(planning):
        mark = await _outbox_mark(env)
        runs["first_plans"] = await replan(harness, env, planning, count, profiler)
        runs["profile"] = profiler.summary() if profiler is not None else None
        if not runs["first_plans"]["aborted"]:
            runs["first_plans"]["fitter_replans"] = await _fitter_replans(env, mark[1])
            driver = runs["first_plans"]["answer"]["driver_event_id"]
            written["first_plans"] = await read_back(env, mark, await _outbox_mark(env), driver)
            conn = await asyncpg.connect(env.dsn)
            try:
                await conn.execute("UPDATE planning.items SET on_hand = on_hand + 37, revision = revision + 1")
            finally:
                await conn.close()
            await vacuum_written(env)
            mark = await _outbox_mark(env)
            revised_profiler = (
                harness.profiler("full_replan") if count <= GOAL_SECONDS_SIZE and storage == "expanded" else None
            )
            runs["every_plan_revised"] = await replan(
                harness, env, planning, count, revised_profiler, label=f"planning-{count}-revised"
            )
            runs["revised_profile"] = revised_profiler.summary() if revised_profiler is not None else None
            if not runs["every_plan_revised"]["aborted"]:
                runs["every_plan_revised"]["fitter_replans"] = await _fitter_replans(env, mark[1])
                driver = runs["every_plan_revised"]["answer"]["driver_event_id"]
                written["every_plan_revised"] = await read_back(env, mark, await _outbox_mark(env), driver)
    if not keep_databases:
        await harness.drop(env)
    # The raw baselines run once the service stopped: they have the machine to themselves, as the service's
    # replans had it.
    try:
        for key, rows in written.items():
            if key == "every_plan_revised":
                await vacuum_written(raw_env)
            runs[key]["raw"] = await raw_storage(harness, raw_env, rows, revised=key == "every_plan_revised")
    finally:
        if not keep_databases:
            await harness.drop(raw_env)
    return runs


def _cpu_s(usage: dict[str, Any], label: str) -> float:
    """The seconds of CPU of `label` over the whole run (`usage` per unit, of `usage["units"]` units)."""
    return float(usage["cpu_ms_per_unit"].get(label, 0)) * usage["units"] / 1000


def _figures(size: dict[str, Any]) -> list[Figure]:
    count = size["skus"]
    storage = "" if size.get("storage", "expanded") == "expanded" else f", {size['storage']} storage"
    figures = []
    for key, title in (("first_plans", "first plans"), ("every_plan_revised", "every plan revised")):
        run_ = size.get(key)
        if run_ is None:
            continue
        raw = run_.get("raw")
        if run_["aborted"]:
            note = f"stopped above {RSS_LIMIT // MIB:,} MB RSS after {run_['seconds']} s"
        else:
            cpu = run_["usage"]["cpu_ms_per_unit"]
            stmts = run_["usage"]["statements_per_unit"] or {}
            note = (
                f"{run_['answer']['revised']:,} revised; CPU planning {cpu.get('planning', 0) * count / 1000:.1f} s,"
                f" database {cpu.get('postgres', 0) * count / 1000:.1f} s;"
                f" {stmts.get('statements', '?')} statements per SKU"
            )
            if run_.get("fitter_replans"):
                note += f"; the fitter re-planned {run_['fitter_replans']:,} SKUs meanwhile"
            if raw is not None:
                note += (
                    f"; raw storage {raw['seconds']:.2f} s, CPU client {_cpu_s(raw['usage'], 'bench'):.1f} s,"
                    f" database {_cpu_s(raw['usage'], 'postgres'):.1f} s"
                )
        figures.append(
            Figure(
                f"full replan, {count:,} SKUs, {title}{storage}",
                run_["seconds"],
                "s",
                baseline=raw["seconds"] if raw is not None else None,
                baseline_name="raw storage: the same rows and bytes, COPY, no planning" if raw is not None else None,
                goal_max=GOAL_SECONDS if count == GOAL_SECONDS_SIZE else None,
                note=note,
            )
        )
        figures.append(
            Figure(
                f"full replan, {count:,} SKUs, {title}{storage}, peak RSS",
                run_["peak_rss_mb"],
                "MB",
                goal_max=GOAL_MB,
                note=(
                    f"planning service process; idle {run_.get('idle_rss_mb', '?')} MB; with its child processes"
                    f" (the fitter's workers, if any ran) {run_.get('peak_rss_with_workers_mb', '?')} MB"
                ),
            )
        )
    return figures


# A number written with thousands commas (`10,000`, `1,250,000`): in a comma-separated list it would read as
# several sizes. A comma followed by a space separates sizes (`100, 200`).
_GROUPED = re.compile(r"(?<![\d_])\d{1,3}(?:,\d{3})+(?![\d_])")


def parse_sizes(text: str) -> list[int]:
    """`BENCH_FULL_REPLAN_SIZES`: SKU counts separated by commas, each a positive whole number, digits grouped with
    underscores if wished (`10_000`). A number written with thousands commas is refused, naming it, rather than
    read as several sizes (`10,000` as 10 and 0)."""
    grouped = _GROUPED.search(text)
    if grouped is not None:
        number = grouped.group(0)
        raise ValueError(
            f"BENCH_FULL_REPLAN_SIZES={text!r}: {number!r} reads as a number with thousands commas; write it"
            f" {number.replace(',', '')} or {number.replace(',', '_')} (sizes are separated by commas)"
        )
    sizes = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            size = int(part)
        except ValueError:
            raise ValueError(f"BENCH_FULL_REPLAN_SIZES={text!r}: {part.strip()!r} is not a whole number") from None
        if size <= 0:
            raise ValueError(f"BENCH_FULL_REPLAN_SIZES={text!r}: {part.strip()!r} is not a positive number of SKUs")
        sizes.append(size)
    if not sizes:
        raise ValueError(f"BENCH_FULL_REPLAN_SIZES={text!r}: no size given")
    return sizes


def _runs(quick: bool) -> list[tuple[int, str]]:
    """(SKUs, plan storage) of each run: every size with expanded plans, and compact ones at the goal size,
    unless `BENCH_FULL_REPLAN_SIZES` or `BENCH_FULL_REPLAN_STORAGE` say otherwise."""
    sizes_env = os.environ.get("BENCH_FULL_REPLAN_SIZES", "").strip()
    storage_env = os.environ.get("BENCH_FULL_REPLAN_STORAGE", "").strip()
    sizes = parse_sizes(sizes_env) if sizes_env else None
    if sizes is None:
        sizes = [QUICK_SKUS] if quick else [GOAL_SECONDS_SIZE, 50_000]
    if storage_env:
        forms = [f.strip() for f in storage_env.split(",") if f.strip()]
        unknown = set(forms) - {"expanded", "compact"}
        if unknown:
            raise ValueError(f"BENCH_FULL_REPLAN_STORAGE: unknown storage {sorted(unknown)}")
        return [(count, form) for form in forms for count in sizes]
    runs = [(count, "expanded") for count in sizes]
    return runs + [(count, "compact") for count in sizes if count == min(sizes)]


async def run(harness: Harness, quick: bool) -> MeasureResult:
    fitted: dict[tuple[int, date], list[tuple[Any, ...]]] = {}
    chunk_skus = QUICK_CHUNK_SKUS if quick else None
    results = [
        await one_size(harness, count, storage, fitted, chunk_skus=chunk_skus, keep_databases=quick)
        for count, storage in _runs(quick)
    ]
    return MeasureResult(
        figures=[f for size in results for f in _figures(size)],
        details={"history_days": HISTORY_DAYS, "promotion_every": PROMOTION_EVERY, "sizes": results},
    )
