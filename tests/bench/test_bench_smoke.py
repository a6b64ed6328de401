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
    assert [f["name"] for f in relay["figures"]] == ["outbox relay"]
    (figure,) = relay["figures"]
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
