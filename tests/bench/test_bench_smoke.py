"""The benchmark suite runs end to end in quick mode and writes the JSON report it promises (no timed checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def _positive_numbers(figure: dict[str, object]) -> list[str]:
    problems = []
    for key in ("value", "baseline", "ratio"):
        value = figure.get(key)
        if value is not None and not (isinstance(value, int | float) and value > 0):
            problems.append(f"{figure['name']}: {key} = {value!r}")
    return problems


@pytest.mark.timeout(300)
def test_quick_run_of_two_cheap_measures_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    completed = subprocess.run(
        [sys.executable, "-m", "salesops.bench", "--quick", "--only", "planning_core", "relay", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["quick"] is True
    assert {"cpu_model", "logical_cores", "memory_gib", "python"} <= report["machine"].keys()
    assert len(report["load_average_start"]) == 3 and len(report["load_average_end"]) == 3
    assert list(report["measures"]) == ["relay", "planning_core"]

    relay = report["measures"]["relay"]
    assert [f["name"] for f in relay["figures"]] == [
        "outbox relay",
        "outbox relay CPU per event",
        "outbox relay statements per event",
    ]
    figure = relay["figures"][0]
    assert figure["unit"] == "events/s" and figure["baseline_name"] == "raw aiokafka send"
    assert figure["goal"] == "ratio >= 0.6" and isinstance(figure["met"], bool)
    assert relay["details"]["events"] > 0

    core = report["measures"]["planning_core"]
    names = [f["name"] for f in core["figures"]]
    assert any(n.startswith("full recompute") for n in names) and "single-SKU revision p99" in names
    for measure in (relay, core):
        assert measure["seconds"] > 0
        problems = [p for f in measure["figures"] for p in _positive_numbers(f)]
        assert not problems, problems


@pytest.mark.timeout(420)
def test_quick_run_measures_http_with_wrk_and_costs_per_request(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    completed = subprocess.run(
        [sys.executable, "-m", "salesops.bench", "--quick", "--only", "http_small", "full_replan", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["statement_statistics"] == "pg_stat_statements"

    http = report["measures"]["http_small"]
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

    replan = report["measures"]["full_replan"]
    names = [f["name"] for f in replan["figures"]]
    assert "full replan, 1,000 SKUs, first plans" in names
    assert "full replan, 1,000 SKUs, every plan revised, peak RSS" in names
    assert "full replan, 1,000 SKUs, first plans, compact storage" in names
    expanded, compact = replan["details"]["sizes"]
    assert (expanded["storage"], compact["storage"]) == ("expanded", "compact")
    for size in (expanded, compact):
        assert size["first_plans"]["answer"]["planned"] == 1000
        assert size["every_plan_revised"]["answer"]["revised"] > 0
        # The raw baseline stored what the service wrote: a plan, a revision and an event per revised SKU.
        for key in ("first_plans", "every_plan_revised"):
            written = size[key]["raw"]["written"]
            revised = size[key]["answer"]["revised"]
            assert written["plans"] == written["revisions"] == revised
            assert written["outbox"] >= revised
            assert size[key]["raw"]["history_skus"] == 1000
    assert expanded["first_plans"]["raw"]["stored_plans_read"] == 0
    assert expanded["every_plan_revised"]["raw"]["stored_plans_read"] == 1000
    # Spelled out, a plan's weeks take more room than compact ones; the events are the same either way.
    assert (
        expanded["first_plans"]["raw"]["written"]["plans_weeks_mb"]
        > compact["first_plans"]["raw"]["written"]["plans_weeks_mb"]
    )
    timed = [f for f in replan["figures"] if not f["name"].endswith("peak RSS")]
    assert timed and all(f["baseline"] > 0 and f["ratio"] > 0 for f in timed)
    for measure in (http, replan):
        problems = [p for f in measure["figures"] for p in _positive_numbers(f)]
        assert not problems, problems
