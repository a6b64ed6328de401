"""Fitting baseline models in the background, a chunk of SKUs at a time, off the event path.

A SKU needs a fit when it has no model yet, when a new ISO week began since its fit (the weekly rollover),
or when reports of weeks its model already saw arrived since (a correction of old weeks, history loaded
late) and moved that history materially (`domain/refit.py`). Per chunk of `CHUNK_SKUS`:

1. a short read: which SKUs, and what fitting them reads (the whole history window, spikes, promotions);
2. the fit, in a worker process (`SALESOPS_PLANNING_FIT_WORKERS`; 0: a thread), holding no lock and no
   connection; short histories get no model there (the smoothing serves them);
3. a short write under the same locks as an event's re-plan (the SKUs' own): the
   models are stored and the SKUs whose model changed are re-planned with the driver `fit:<week>:<n>`.

Step 1 leases the chunk's SKUs (`planning.fit_leases`, for `SALESOPS_PLANNING_FIT_LEASE_S`) and step 3 releases
them, so replicas share a rollover's fits out rather than each fitting every SKU.

Consumers wait at most for step 3 of one chunk. Every re-plan in between applies the stored models,
advanced through the weeks completed since their fit (`domain/baseline.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import ParamSpec, TypeVar

import structlog

from services.planning_service.domain import BaselineModel, PlanningParams, Promotion, SkuInputs
from services.planning_service.domain.refit import (
    MIN_FIT_WEEKS,
    changed_materially,
    history_digests,
    observed_weeks,
)
from services.planning_service.recompute import recompute
from services.planning_service.settings import PlanningSettings
from services.planning_service.store import Driver, FittedModel, FittingInputs, SqlStore, StoredModel
from services.planning_service.units import chunk_unit
from shared.ports import Publisher
from shared.service import Runtime

log = structlog.get_logger("salesops.planning.fitter")

_P = ParamSpec("_P")
_T = TypeVar("_T")

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent ends

CHUNK_SKUS = 500  # domain.fitting.CHUNK_SKUS: memory stays flat in the number of SKUs
# Added to a fit worker process's nice value: fitting is background work, and on a busy machine the service's
# own work (a re-plan, the consumer, requests) goes first; the worker fits with whatever CPU is left.
FIT_WORKER_NICENESS = 10
FITTED = "planning.baseline.fitted"


@dataclass
class FitPlan:
    """What a chunk needs: SKUs to fit in the worker, SKUs whose history is too short (no model), and SKUs
    whose history changed immaterially (the count of changes seen)."""

    horizon_start: date
    to_fit: list[SkuInputs] = field(default_factory=list)
    too_short: list[str] = field(default_factory=list)
    unchanged: dict[str, int] = field(default_factory=dict)
    promotions: list[Promotion] = field(default_factory=list)
    stored: dict[str, StoredModel] = field(default_factory=dict)

    def to_fit_and_too_short(self, models: Sequence[BaselineModel | None]) -> list[tuple[str, BaselineModel | None]]:
        """(SKU, model) of every SKU fitted (`models`, in the order of `to_fit`) and of every one too short."""
        fitted = [(inp.item.sku, model) for inp, model in zip(self.to_fit, models, strict=True)]
        return fitted + [(sku, None) for sku in self.too_short]


def plan_fits(loaded: FittingInputs, horizon_start: date) -> FitPlan:
    """Split a chunk: a model fitted for this week whose history moved immaterially stays as it is."""
    plan = FitPlan(horizon_start, promotions=loaded.promotions, stored=loaded.stored)
    histories = [inp.history for inp in loaded.inputs]
    digests = history_digests(histories, horizon_start)
    weeks = observed_weeks(histories, horizon_start)
    for inp, digest, observed in zip(loaded.inputs, digests, weeks, strict=True):
        stored = loaded.stored.get(inp.item.sku)
        if stored is not None and stored.origin == horizon_start and not changed_materially(stored.digest, digest):
            plan.unchanged[inp.item.sku] = stored.history_changes
        elif observed < MIN_FIT_WEEKS:
            plan.too_short.append(inp.item.sku)
        else:
            plan.to_fit.append(inp)
    return plan


def fit_chunk(
    inputs: Sequence[SkuInputs], horizon_start: date, promotions: Sequence[Promotion], params: PlanningParams
) -> list[BaselineModel | None]:
    """Runs in the worker: the statistics libraries are imported there only."""
    from services.planning_service.domain.fitting import fit_baselines

    return fit_baselines(inputs, horizon_start, promotions, params)


def _executor(settings: PlanningSettings) -> Executor:
    if settings.planning_fit_workers == 0:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="fit")
    # spawned, not forked: the service process has an event loop and threads a fork would copy half-way
    return ProcessPoolExecutor(
        settings.planning_fit_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_end_with_service,
        initargs=(os.getpid(),),
    )


def _end_with_service(service_pid: int) -> None:
    """In a worker: the kernel ends it when the service process (`service_pid`) ends (Linux), so a service
    stopped while its workers fit, or killed, leaves none behind holding their memory. The worker also yields
    the CPU to the service (`FIT_WORKER_NICENESS`)."""
    with contextlib.suppress(OSError):
        os.nice(FIT_WORKER_NICENESS)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    # The service ended before the worker got here (its orphan was adopted). Not `getppid() == 1`: in a
    # container the service itself may be process 1.
    if os.getppid() != service_pid:
        os._exit(0)


def fitter_id() -> str:
    """Names one fitter (one service process) as the holder of its leases."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


async def fit_next_chunk(
    runtime: Runtime, settings: PlanningSettings, executor: Executor, *, holder: str | None = None
) -> int:
    """Fit the next chunk of SKUs that needs it and no other fitter holds; the number of SKUs looked at (0: none
    needed a fit, or the others hold them all)."""
    horizon_start = settings.horizon_start()
    holder = holder or fitter_id()
    async with runtime.unit_of_work() as uow:
        store = SqlStore(uow.session)
        skus = await store.lease_skus_to_fit(
            horizon_start, CHUNK_SKUS, holder=holder, lease_s=settings.planning_fit_lease_s
        )
        await uow.commit()  # the lease is seen by the other replicas' fitters from here
        if not skus:
            return 0
        loaded = await store.fitting_inputs(skus, horizon_start)
        await store.end_read()
    plan = plan_fits(loaded, horizon_start)
    models: list[BaselineModel | None] = []
    if plan.to_fit:
        loop = asyncio.get_running_loop()
        params = settings.planning_params()
        models = await loop.run_in_executor(executor, fit_chunk, plan.to_fit, horizon_start, plan.promotions, params)
    # a chunk's unit: its re-plan writes the chunk's mps.revised events encoded, in one statement; the lease
    # is released in the same transaction that stores the models
    async with chunk_unit(runtime) as (store, publisher):
        await store_fits(store, publisher, settings, plan, models, loaded.inputs)
        await store.release_fit_leases(skus, holder=holder)
    return len(skus)


async def store_fits(
    store: SqlStore,
    publisher: Publisher,
    settings: PlanningSettings,
    plan: FitPlan,
    models: Sequence[BaselineModel | None],
    inputs: Sequence[SkuInputs],
) -> list[str]:
    """Store a chunk's models and re-plan the SKUs whose model changed; returns those SKUs."""
    horizon = plan.horizon_start
    changed = await save_fits(store, plan, models, inputs)
    if changed:
        fitted = plan.to_fit_and_too_short(models)
        kinds = Counter((model.spec.split(" ")[0] if model else "smoothing") for sku, model in fitted if sku in changed)
        last_week = horizon - timedelta(weeks=1)
        summary = f"baseline models fitted on the history to the week of {last_week.isoformat()}: " + ", ".join(
            f"{count} {kind}" for kind, count in sorted(kinds.items())
        )
        driver_id = f"fit:{horizon.isoformat()}:{uuid.uuid4().hex[:12]}"
        await store.record_driver(Driver(driver_id, FITTED, None, sorted(changed), summary))
        await recompute(store, publisher, changed, [driver_id], settings)
    log.info(
        "baseline models fitted",
        week=horizon.isoformat(),
        fitted=len(plan.to_fit) + len(plan.too_short),
        replanned=len(changed),
    )
    return changed


async def save_fits(
    store: SqlStore, plan: FitPlan, models: Sequence[BaselineModel | None], inputs: Sequence[SkuInputs]
) -> list[str]:
    """Store a chunk's models under its SKUs' locks (taken here), re-planning nothing; returns the SKUs whose
    model changed (`store_fits` re-plans them)."""
    horizon = plan.horizon_start
    digests = dict(
        zip(
            [inp.item.sku for inp in inputs],
            history_digests([inp.history for inp in inputs], horizon),
            strict=True,
        )
    )
    fitted = plan.to_fit_and_too_short(models)
    changed = []
    for sku, model in fitted:
        before = plan.stored.get(sku)
        if (before.model if before else None) != model:
            changed.append(sku)
    await store.lock_skus(sorted({sku for sku, _ in fitted} | set(plan.unchanged)))
    await store.save_models(
        [
            FittedModel(
                sku,
                model,
                horizon,
                digests[sku],
                plan.stored[sku].history_changes if sku in plan.stored else 0,
            )
            for sku, model in fitted
        ]
    )
    await store.mark_checked(plan.unchanged)
    return changed


async def keep_models_fitted(runtime: Runtime) -> None:
    """Background task: fit chunk after chunk while SKUs need it, then look again every
    `SALESOPS_PLANNING_FIT_CHECK_S` seconds; a failed chunk is retried at the next look."""
    settings = runtime.settings
    assert isinstance(settings, PlanningSettings)
    holder = fitter_id()
    workers = FitWorkers(settings)
    try:
        while True:
            try:
                looked_at = await fit_next_chunk(runtime, settings, workers, holder=holder)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("fitting baseline models failed; retrying", error=repr(exc))
                # a worker that died leaves its pool broken: the next chunk gets a new one
                workers.stop()
                looked_at = 0
            if not looked_at:
                workers.stop_if_idle()
                await asyncio.sleep(settings.planning_fit_check_s)
    finally:
        workers.stop()


class FitWorkers(Executor):
    """The fitter's executor: its worker processes start when a chunk has SKUs to fit and stop once nothing was
    handed to them for `SALESOPS_PLANNING_FIT_WORKER_IDLE_S` (`stop_if_idle`). A worker process holds the
    statistics libraries (a few hundred MB) that the service needs only while it fits, e.g. after a rollover."""

    def __init__(self, settings: PlanningSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._executor: Executor | None = None
        self._used_at = clock()

    @property
    def running(self) -> bool:
        return self._executor is not None

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        if self._executor is None:
            self._executor = _executor(self._settings)
        self._used_at = self._clock()
        return self._executor.submit(fn, *args, **kwargs)

    def stop_if_idle(self) -> None:
        if self._clock() - self._used_at >= self._settings.planning_fit_worker_idle_s:
            self.stop()

    def stop(self) -> None:
        """Stop the workers (the work handed to them is cancelled); the next `submit` starts new ones."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=cancel_futures)
