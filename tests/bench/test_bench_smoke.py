"""The benchmark suite runs end to end in quick mode and writes the JSON report it promises (no timed checks).

One quick run of four measures serves every test here: the cheap ones (relay, planning core) and the ones that
start services (HTTP with wrk, the full replan), so the embedded PostgreSQL and the template database are set up
once."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHOSEN = ("planning_core", "relay", "http_small", "full_replan")

pytestmark = pytest.mark.e2e


@dataclass
class QuickRun:
    report: dict[str, Any]
    output: str

    def measure(self, name: str) -> dict[str, Any]:
        """The measure's entry; a measure that failed fails the test with its traceback and the run's output."""
        measure: dict[str, Any] = self.report["measures"][name]
        assert "error" not in measure, measure.get("error", "") + self.output
        return measure


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    out = tmp_path_factory.mktemp("bench") / "latest.json"
    completed = subprocess.run(
        [sys.executable, "-m", "salesops.bench", "--quick", "--only", *CHOSEN, "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=560,
    )
    output = completed.stdout[-3000:] + completed.stderr[-3000:]
    # A failed measure is named by the test of that measure; anything else fails every test here.
    assert out.exists(), output
    run = QuickRun(json.loads(out.read_text()), output)
    if completed.returncode != 0:
        assert any("error" in m for m in run.report["measures"].values()), output
    return run


def _positive_numbers(figure: dict[str, object]) -> list[str]:
    problems = []
    for key in ("value", "baseline", "ratio"):
        value = figure.get(key)
        if value is not None and not (isinstance(value, int | float) and value > 0):
            problems.append(f"{figure['name']}: {key} = {value!r}")
    return problems


@pytest.mark.timeout(600)
def test_quick_run_writes_the_report_with_the_cheap_measures(quick_run: QuickRun) -> None:
    report = quick_run.report
    assert report["quick"] is True
    assert {"cpu_model", "logical_cores", "memory_gib", "python"} <= report["machine"].keys()
    assert len(report["load_average_start"]) == 3 and len(report["load_average_end"]) == 3
    # Only the measures chosen ran, in the suite's order.
    assert list(report["measures"]) == ["http_small", "relay", "planning_core", "full_replan"]

    relay = quick_run.measure("relay")
    assert [f["name"] for f in relay["figures"]] == [
        "outbox relay",
        "outbox relay CPU per event",
        "outbox relay statements per event",
    ]
    figure = relay["figures"][0]
    assert figure["unit"] == "events/s" and figure["baseline_name"] == "raw aiokafka send"
    assert figure["goal"] == "ratio >= 0.6" and isinstance(figure["met"], bool)
    assert relay["details"]["events"] > 0

    core = quick_run.measure("planning_core")
    names = [f["name"] for f in core["figures"]]
    assert any(n.startswith("full recompute") for n in names) and "single-SKU revision p99" in names
    for measure in (relay, core):
        assert measure["seconds"] > 0
        problems = [p for f in measure["figures"] for p in _positive_numbers(f)]
        assert not problems, problems


@pytest.mark.timeout(600)
def test_quick_run_measures_http_with_wrk_and_costs_per_request(quick_run: QuickRun) -> None:
    report = quick_run.report
    assert report["statement_statistics"] == "pg_stat_statements"

    http = quick_run.measure("http_small")
    figures = {f["name"]: f for f in http["figures"]}
    rate = figures["POST /v1/returns"]
    assert rate["unit"] == "req/s" and rate["goal"] == "ratio >= 0.3" and isinstance(rate["met"], bool)
    assert http["details"]["generator"] == "wrk"
    for side in ("system_rounds", "baseline_rounds"):
        for round_ in http["details"][side]:
            # Every request created a row: unique ids, no idempotent replays counted as throughput.
            assert round_["succeeded"] <= round_["rows_created"] <= round_["succeeded"] + http["details"]["connections"]
            assert round_["usage"]["lock_waits"]["samples"] > 0
    # The bare endpoint runs exactly one statement per request in its own database.
    statements = figures["POST /v1/returns statements per request"]
    assert 1.0 <= statements["baseline"] <= 1.05
    # A return is at least its own statement; a quality return (a fifth of the bodies) runs several more.
    assert statements["value"] > 1.0
    for name in ("POST /v1/returns service CPU per request", "POST /v1/returns database CPU per request"):
        assert figures[name]["value"] > 0 and figures[name]["baseline"] > 0
    problems = [p for f in http["figures"] for p in _positive_numbers(f)]
    assert not problems, problems


@pytest.mark.timeout(600)
def test_quick_run_replans_in_both_storages_beside_raw_storage(quick_run: QuickRun) -> None:
    replan = quick_run.measure("full_replan")
    expanded, compact = replan["details"]["sizes"]
    assert (expanded["storage"], compact["storage"]) == ("expanded", "compact")
    skus = expanded["skus"]
    assert skus > 0 and compact["skus"] == skus
    names = [f["name"] for f in replan["figures"]]
    assert f"full replan, {skus:,} SKUs, first plans" in names
    assert f"full replan, {skus:,} SKUs, every plan revised, peak RSS" in names
    assert f"full replan, {skus:,} SKUs, first plans, compact storage" in names
    assert f"full replan, {skus:,} SKUs, every plan revised, compact storage" in names
    for size in (expanded, compact):
        # Every seeded SKU's model was fitted and stored before the replans (fitted once, copied for the second).
        assert size["models"] == skus
        # Replanned in several chunks, as at full size.
        assert size["replan_chunk_skus"] < skus
        assert size["first_plans"]["answer"]["planned"] == skus
        assert size["every_plan_revised"]["answer"]["revised"] > 0
        # The raw baseline stored what the service wrote: a plan, a revision and an event per revised SKU.
        for key in ("first_plans", "every_plan_revised"):
            written = size[key]["raw"]["written"]
            revised = size[key]["answer"]["revised"]
            assert written["plans"] == written["revisions"] == revised
            assert written["outbox"] >= revised
            assert size[key]["raw"]["history_skus"] == skus
    assert expanded["first_plans"]["raw"]["stored_plans_read"] == 0
    assert expanded["every_plan_revised"]["raw"]["stored_plans_read"] == skus
    # Spelled out, a plan's weeks take more room than compact ones; the events are the same either way.
    assert (
        expanded["first_plans"]["raw"]["written"]["plans_weeks_mb"]
        > compact["first_plans"]["raw"]["written"]["plans_weeks_mb"]
    )
    timed = [f for f in replan["figures"] if not f["name"].endswith("peak RSS")]
    assert timed and all(f["baseline"] > 0 and f["ratio"] > 0 for f in timed)
    problems = [p for f in replan["figures"] for p in _positive_numbers(f)]
    assert not problems, problems
