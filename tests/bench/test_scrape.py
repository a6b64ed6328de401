"""The service's own view of a run: histogram deltas between two scrapes of a real registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from salesops.bench.scrape import brief, parse, process_view
from shared.metrics import Metrics


def test_what_a_histogram_observed_between_two_scrapes() -> None:
    metrics = Metrics()
    wait = metrics.process.pool_wait.labels("returns")
    wait.observe(5.0)  # before the run: not counted
    before = parse(generate_latest(metrics.registry).decode())
    for seconds in [0.0002] * 98 + [0.02, 0.3]:
        wait.observe(seconds)
    for seconds in (0.001, 0.05):
        metrics.process.loop_lag.labels("returns").observe(seconds)
    view = process_view(before, parse(generate_latest(metrics.registry).decode()))

    assert view["pool_wait"] == {
        "count": 100,
        "mean_ms": round((98 * 0.0002 + 0.32) / 100 * 1000, 3),
        "p99_under_ms": 25.0,
        "max_under_ms": 500.0,
        "over_10ms_share": 0.02,
    }
    assert view["loop_lag"]["count"] == 2 and view["loop_lag"]["over_10ms_share"] == 0.5
    assert "pool checkouts 2.0/unit" in brief(view, 50)


def test_a_service_without_the_metrics_reads_as_none() -> None:
    registry = CollectorRegistry()
    Histogram("other_seconds", "another histogram", registry=registry).observe(1.0)
    samples = parse(generate_latest(registry).decode())
    assert process_view(samples, samples) == {"pool_wait": None, "loop_lag": None}
    assert brief(process_view(samples, samples), 10) == ""
