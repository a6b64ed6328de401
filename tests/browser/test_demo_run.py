"""`salesops demo` against the running system: what it announces really happens, and re-running it is safe."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from salesops.demo import SPIKE_RUN_DAYS, build_scenario
from tests.browser.conftest import Stack

pytestmark = pytest.mark.e2e

SEED = 31


def run_demo(stack: Stack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "salesops",
            "demo",
            "--seed",
            str(SEED),
            "--port-base",
            str(stack.port_base),
            "--keys-file",
            str(stack.data_dir / "api-keys.json"),
            "--wait",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SALESOPS_")}, "COLUMNS": "200"},
    )


def test_the_demo_causes_what_it_announces_and_can_be_run_again(stack):
    first = run_demo(stack)
    assert first.returncode == 0, first.stdout + first.stderr
    scenario = build_scenario(SEED, datetime.now(UTC).date())
    assert f"http://127.0.0.1:{stack.port_base + 5}/" in first.stdout

    with stack.client("returns") as returns:
        surge = returns.get("/v1/alerts", params={"sku": scenario.surge_sku, "type": "return-surge"}).json()["data"]
        assert surge, "no return-surge alert"
        segments = {a["segment"] for a in surge[-1]["accounts"]}
        assert "strategic" in segments
        assert returns.get("/v1/alerts", params={"sku": scenario.overload_sku, "type": "capacity-conflict"}).json()[
            "data"
        ]
        # The capacity cut broke the stable account's promise only; its owner's alert names the tier and a date.
        open_promises = returns.get(
            "/v1/alerts", params={"sku": scenario.promise_sku, "type": "promise-at-risk", "status": "open"}
        ).json()["data"]
        assert {a["details"]["account_id"] for a in open_promises} == {scenario.stable_account}
        assert all(a["details"]["tier"] == "stable" and a["details"]["earliest_on"] for a in open_promises)
    with stack.client("promotion") as promotion:
        assert promotion.get(f"/v1/promotions/{scenario.overload_id}").json()["status"] == "at_risk"
        assert promotion.get(f"/v1/promotions/{scenario.campaign_id}").json()["status"] == "planned"
    with stack.client("fulfillment") as fulfillment:
        spikes = fulfillment.get("/v1/spikes", params={"sku": scenario.spike_sku}).json()["data"]
        run = [(scenario.spike_day + timedelta(days=n)).isoformat() for n in range(SPIKE_RUN_DAYS)]
        assert [s["day"] for s in spikes] == run
        assert spikes[0]["explained_by_promotion_id"] is None
        # Weekly seasonality and noise alone never spike.
        history_start = scenario.today - timedelta(days=84)
        others = fulfillment.get("/v1/spikes", params={"since": history_start, "limit": 500}).json()["data"]
        assert {s["sku"] for s in others if s["sku"].startswith(scenario.prefix)} == {scenario.spike_sku}
    with stack.client("planning") as planning:
        campaign = planning.get(f"/v1/mps/{scenario.campaign_skus[0]}").json()
        assert any(w["promotion_uplift"] > 0 for w in campaign["weeks"])
        assert any(scenario.campaign_id in d["summary"] for d in campaign["drivers"])
        overloaded = planning.get(f"/v1/mps/{scenario.overload_sku}").json()
        assert any(w["capacity_shortfall"] > 0 for w in overloaded["weeks"])
        sensed = planning.get(f"/v1/mps/{scenario.spike_sku}").json()
        assert sensed["weeks"][0]["sensing_adjustment"] > 0

    again = run_demo(stack)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "409" not in again.stdout, "an identical re-run must be an idempotent retry"
