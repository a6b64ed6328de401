"""Reliability scenarios: every test is marked `reliability`; the run report is printed at the end of the
session and written to test-artifacts/reliability-summary.json."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from salesops.infra import EmbeddedPostgres
from shared import migrations
from tests.reliability.harness import FULL, REPORT

_ran: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.reliability)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "tests/reliability/" in report.nodeid:
        _ran.append(f"{report.nodeid.split('::', 1)[1]}: {report.outcome}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _ran:
        return
    summary = {**REPORT.as_dict(), "tests": _ran}
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


@pytest.fixture(scope="session")
def full_run() -> bool:
    return FULL


@pytest.fixture
async def private_postgres(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL server of this test alone (stopping it leaves the session's server alone), migrated."""
    embedded = EmbeddedPostgres(tmp_path / "pg")
    url = await asyncio.to_thread(embedded.start)
    for service in migrations.SERVICES:
        await asyncio.to_thread(migrations.upgrade, service, url)
    try:
        yield embedded, url
    finally:
        await asyncio.to_thread(embedded.stop, "immediate")
