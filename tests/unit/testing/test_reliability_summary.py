"""The reliability summary of a run on several test workers adds up what each worker counted, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]

pytest_plugins = ["pytester"]

SCENARIO = """
from tests.reliability.harness import REPORT


def test_{name}():
    REPORT.faults["SIGKILL"] += 1
    REPORT.accepted += {accepted}
    REPORT.measurements.setdefault("figures", {{}})["{name}"] = {accepted}
"""


@pytest.mark.parametrize("workers", [["-p", "xdist.plugin", "-n", "2", "--dist", "loadfile"], []])
def test_the_summary_adds_up_every_workers_counts_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    # Only the plugins named (the installed ones would each be loaded by every process, for nothing).
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # Folders, not packages: `tests.reliability` stays the project's own (a package earlier on the path would hide it).
    folder = pytester.path / "tests" / "reliability"
    folder.mkdir(parents=True)
    for name, accepted in (("first", 2), ("second", 3)):
        (folder / f"test_{name}.py").write_text(SCENARIO.format(name=name, accepted=accepted))
    result = pytester.runpytest_subprocess("-p", "tests.reliability.summary", *workers, "tests/reliability")
    result.assert_outcomes(passed=2)
    summary = json.loads((pytester.path / "test-artifacts" / "reliability-summary.json").read_text())
    assert summary["faults_injected"] == {"SIGKILL": 2}
    assert summary["accepted_requests"] == 5
    assert summary["measurements"] == {"figures": {"first": 2, "second": 3}}
    assert summary["tests"] == ["test_first: passed", "test_second: passed"]
    assert summary["notes"] == []
