"""The reliability suite's run report, printed at the end of the session and written to
test-artifacts/reliability-summary.json. Registered by the root conftest, so that it runs in the process that
reports the session: with test workers (pytest-xdist), each worker hands its counts over when it finishes and
the controller adds them up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import REPORT

WORKER_OUTPUT = "reliability-report"

_ran: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "tests/reliability/" in report.nodeid:
        _ran.append(f"{report.nodeid.split('::', 1)[1]}: {report.outcome}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        # Plain JSON text: what a worker may hand over is limited to simple types.
        worker_output[WORKER_OUTPUT] = json.dumps(REPORT.state(), default=str)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    counted = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    if counted:
        REPORT.add(json.loads(counted))
    elif error is not None:
        # A worker that crashed or was stopped hands nothing over: say so rather than report its counts as none.
        REPORT.note(f"test worker {node.gateway.id} went down before it handed its counts over: they are missing")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _ran or hasattr(config, "workeroutput"):
        return
    summary = {**REPORT.as_dict(), "tests": sorted(_ran)}
    out = Path(config.rootpath) / "test-artifacts" / "reliability-summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str))
    write = terminalreporter.write_line
    terminalreporter.section(f"reliability summary ({summary['mode']})")
    write(f"faults injected: {summary['faults_total']}  {summary['faults_injected']}")
    write(f"messages sent:   {summary['messages_total']}  {summary['messages_sent']}")
    write(f"bad inputs:      {summary['bad_inputs_total']}  {summary['bad_inputs']}")
    write(f"HTTP statuses:   {summary['http_statuses']}")
    write(
        f"accepted: {summary['accepted_requests']}  lost: {summary['lost']}  duplicated: {summary['duplicated']}"
        f"  stuck: {summary['stuck']}"
    )
    for name, value in summary["measurements"].items():
        if isinstance(value, dict):
            write(f"{name}:")
            for key, figure in value.items():
                write(f"  {key}: {figure}")
        else:
            write(f"{name}: {value}")
    for text in summary["notes"]:
        write(f"note: {text}")
    write(f"property tests: {summary['property_tests']}")
    write(f"webhook signatures: {summary['webhook_signatures']}")
    write(f"written to {out}")
