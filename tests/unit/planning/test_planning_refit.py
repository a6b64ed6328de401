"""When a stored baseline model is fitted again, and the track record's week kinds and seasonal naive, with
hand-computed expectations."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import date, timedelta

import numpy as np
import psutil

from services.planning_service.domain import BaselineModel, Item, Method, Promotion, PromotionItem, SkuInputs
from services.planning_service.domain.refit import (
    HistoryDigest,
    changed_materially,
    history_digests,
    observed_weeks,
)
from services.planning_service.domain.track_record import seasonal_naive, week_kinds
from services.planning_service.fitter import FIT_WORKER_NICENESS, FitWorkers, plan_fits
from services.planning_service.settings import PlanningSettings
from services.planning_service.store import FittingInputs, StoredModel

ORIGIN = date(2026, 11, 16)


def test_a_digest_holds_the_first_observed_week_and_units_per_13_week_block():
    history = {ORIGIN - timedelta(weeks=1): 10.0, ORIGIN - timedelta(weeks=3): 5.0, ORIGIN - timedelta(weeks=14): 7.0}
    (digest,) = history_digests([history], ORIGIN)
    assert digest.observed_weeks == 14  # from the first report to the last complete week; gaps are zero
    assert digest.blocks == (0.0,) * 10 + (7.0, 15.0)
    assert observed_weeks([history, {}], ORIGIN) == [14, 0]
    assert HistoryDigest.from_json(digest.to_json()) == digest


def test_a_change_is_material_beyond_five_percent_of_a_block_and_one_unit():
    fitted = HistoryDigest(30, (1000.0, 10.0, 0.0))
    assert not changed_materially(fitted, HistoryDigest(30, (1040.0, 10.0, 0.0)))  # 4 %
    assert changed_materially(fitted, HistoryDigest(30, (1060.0, 10.0, 0.0)))  # 6 %
    assert not changed_materially(fitted, HistoryDigest(30, (1000.0, 11.0, 0.0)))  # 10 %, but one unit
    assert changed_materially(fitted, HistoryDigest(30, (1000.0, 10.0, 2.0)))  # from nothing
    assert changed_materially(fitted, HistoryDigest(31, (1000.0, 10.0, 0.0)))  # an earlier first report


def _weeks(count: int, units: float) -> dict[date, float]:
    return {ORIGIN - timedelta(weeks=w): units for w in range(1, count + 1)}


def test_a_chunk_is_split_into_fits_short_histories_and_immaterial_changes():
    model = BaselineModel(Method.ETS, ORIGIN, 100.0)
    long_history = _weeks(20, 100.0)
    (digest,) = history_digests([long_history], ORIGIN)
    loaded = FittingInputs(
        inputs=[
            SkuInputs(Item("KEPT", "k", 0, 0), long_history),
            SkuInputs(Item("OLD", "o", 0, 0), long_history),
            SkuInputs(Item("NEW", "n", 0, 0), long_history),
            SkuInputs(Item("SHORT", "s", 0, 0), _weeks(12, 100.0)),
        ],
        stored={
            "KEPT": StoredModel("KEPT", model, ORIGIN, digest, history_changes=3, checked_changes=2),
            "OLD": StoredModel("OLD", model, ORIGIN - timedelta(weeks=1), digest, 0, 0),
        },
    )
    plan = plan_fits(loaded, ORIGIN)
    assert plan.unchanged == {"KEPT": 3}
    assert [inp.item.sku for inp in plan.to_fit] == ["OLD", "NEW"]
    assert plan.too_short == ["SHORT"]


def test_week_kinds_rank_promotion_over_cannibalized_over_dip():
    promotion = Promotion(
        "P1",
        ORIGIN - timedelta(weeks=4),
        ORIGIN - timedelta(weeks=4) + timedelta(days=9),  # Monday of week -4 to Wednesday of week -3
        (PromotionItem("A", 20),),
        post_promo_dip_pct=10,
        post_promo_dip_weeks=1,
    )
    kinds = week_kinds("A", [promotion], ORIGIN, 6)
    # weeks -6 .. -1: the promotion covers weeks -4 and -3, its dip runs Thursday of -3 to Wednesday of -2
    assert kinds == ["normal", "normal", "promotion", "promotion", "post-promotion", "normal"]
    assert week_kinds("B", [promotion], ORIGIN, 6) == ["normal"] * 6


def test_seasonal_naive_repeats_last_year_or_the_last_week():
    year = np.arange(60, dtype=np.float64)
    assert seasonal_naive(year, 3).tolist() == [8.0, 9.0, 10.0]
    assert seasonal_naive(np.array([4.0, 6.0]), 2).tolist() == [6.0, 6.0]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_fit_workers_start_when_work_comes_and_stop_after_the_idle_time():
    clock = _Clock()
    workers = FitWorkers(PlanningSettings(planning_fit_workers=0, planning_fit_worker_idle_s=60), clock=clock)
    assert not workers.running
    workers.stop_if_idle()  # nothing started, nothing to stop
    assert workers.submit(sum, [1, 2]).result(timeout=10) == 3
    assert workers.running
    clock.now = 50.0
    workers.stop_if_idle()  # 50 s without a fit: kept
    assert workers.running
    assert workers.submit(sum, [2, 3]).result(timeout=10) == 5
    clock.now = 109.0
    workers.stop_if_idle()  # 59 s since the last one: kept
    assert workers.running
    clock.now = 110.0
    workers.stop_if_idle()
    assert not workers.running
    assert workers.submit(sum, [3, 4]).result(timeout=10) == 7  # the next fit starts them again
    assert workers.running
    workers.shutdown()
    assert not workers.running


async def test_a_fit_worker_process_exits_once_idle():
    workers = FitWorkers(PlanningSettings(planning_fit_workers=1, planning_fit_worker_idle_s=0))
    loop = asyncio.get_running_loop()
    pid = await asyncio.wait_for(loop.run_in_executor(workers, os.getpid), timeout=60)
    assert pid != os.getpid() and psutil.pid_exists(pid)
    workers.stop_if_idle()
    assert not workers.running
    deadline = time.monotonic() + 30
    while _running(pid):
        assert time.monotonic() < deadline, "the worker process is still running"
        await asyncio.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether the process runs still: not gone, nor a zombie (it may go between any two looks at it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


_SERVICE_KILLED_MID_FIT = """
import os, sys
from services.planning_service.fitter import FitWorkers
from services.planning_service.settings import PlanningSettings
workers = FitWorkers(PlanningSettings(planning_fit_workers=1))
print(workers.submit(os.getpid).result(timeout=60), flush=True)
workers.submit(__import__("time").sleep, 600)  # still fitting when the service dies
os._exit(9)
"""


def test_a_fit_worker_ends_with_a_service_that_died(tmp_path):
    # to a file, not a pipe: a worker left behind would keep a pipe open
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:
        service = subprocess.run(
            [sys.executable, "-c", _SERVICE_KILLED_MID_FIT], stdout=stdout, timeout=120, check=False
        )
    assert service.returncode == 9
    pid = int(out.read_text().strip())
    deadline = time.monotonic() + 30
    while _running(pid):
        assert time.monotonic() < deadline, "the worker process outlived its service"
        time.sleep(0.05)


_WORKER_START = """
import os, sys
from services.planning_service.fitter import _end_with_service
_end_with_service(int(sys.argv[1]))
print("fitting")
"""


def test_a_fit_worker_stays_when_its_service_is_alive_whatever_its_pid():
    # Started by its service: in a container the service may be process 1, which an orphan's parent is too, so
    # the worker tells its service by pid, not by "parent is 1".
    alive = subprocess.run(
        [sys.executable, "-c", _WORKER_START, str(os.getpid())], capture_output=True, text=True, timeout=60
    )
    assert alive.returncode == 0
    assert alive.stdout.strip() == "fitting"
    # Adopted by another process than the service that started it: the service is gone, the worker leaves.
    orphan = subprocess.run(
        [sys.executable, "-c", _WORKER_START, str(os.getpid() + 1_000_000)], capture_output=True, text=True, timeout=60
    )
    assert orphan.returncode == 0
    assert orphan.stdout == ""


async def test_a_fit_worker_process_yields_the_cpu_to_its_service():
    workers = FitWorkers(PlanningSettings(planning_fit_workers=1))
    try:
        loop = asyncio.get_running_loop()
        niceness = await asyncio.wait_for(loop.run_in_executor(workers, os.nice, 0), timeout=60)
        assert niceness == min(os.nice(0) + FIT_WORKER_NICENESS, 19)
    finally:
        workers.stop()
