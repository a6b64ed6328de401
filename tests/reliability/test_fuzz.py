"""Schema-driven fuzzing of every operation of every service (valid auth): no 500, no response that breaks
the published schema. Planning invariants are property-tested in tests/unit/planning/test_planning_properties.py."""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error, response_schema_conformance

from shared.settings import Settings
from tests.reliability.harness import REPORT, SERVICES, build_apps, live_server, scaled

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def fuzz(base_url: str, key: str, examples: int) -> tuple[int, list[str]]:
    """Run every operation of one service's schema; returns (requests made, failures)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    sent = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            nonlocal sent
            if case.path.endswith("/stream"):
                return  # an endless response; the SSE stream has its own tests
            response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10)
            sent += 1
            try:
                case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
            except (Exception, BaseExceptionGroup) as exc:  # collected: one run reports every broken operation
                failures.append(f"{case.method} {case.path}: {case.path_parameters} {case.body!r:.300} -> {exc!s:.300}")
                raise

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            if not failures or not failures[-1].startswith(operation.label):
                failures.append(f"{operation.label}: could not run: {exc!r}"[:600])
    return sent, failures


@pytest.mark.parametrize("service", SERVICES)
async def test_fuzzed_requests_never_break_a_service(
    service: str, settings: Settings, api_keys: dict[str, Any]
) -> None:
    app = build_apps(settings)[service]
    async with live_server(app) as url:
        sent, failures = await asyncio.to_thread(fuzz, url, api_keys["admin"], scaled(20, 200))
    REPORT.bad_inputs[f"fuzzed requests ({service})"] += sent
    assert sent > 0
    assert not failures, "\n".join(sorted(set(failures))[:20])
