"""A service's own view of a metered stretch, read from its `/metrics` before and after it: how long checkouts
waited for a database connection (`salesops_db_pool_checkout_wait_seconds`) and how late its event loop woke
its tasks (`salesops_event_loop_lag_seconds`). A service without these metrics reads as none."""

from __future__ import annotations

import math
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

# (sample name, sorted labels) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

POOL_WAIT = "salesops_db_pool_checkout_wait_seconds"
LOOP_LAG = "salesops_event_loop_lag_seconds"


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(base_url: str) -> Samples:
    """The samples of a service's `/metrics` (none when it cannot be read)."""
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            response = await client.get("/metrics")
            response.raise_for_status()
    except httpx.HTTPError:
        return {}
    return parse(response.text)


def _histogram(samples: Samples, family: str) -> tuple[float, float, dict[float, float]]:
    """Count, sum and cumulative bucket counts by upper bound of a histogram, summed over its other labels."""
    count = total = 0.0
    buckets: dict[float, float] = {}
    for (name, labels), value in samples.items():
        if name == f"{family}_count":
            count += value
        elif name == f"{family}_sum":
            total += value
        elif name == f"{family}_bucket":
            bound = float(dict(labels)["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    return count, total, buckets


def histogram_delta(before: Samples, after: Samples, family: str, *, over_s: float = 0.01) -> dict[str, Any] | None:
    """What a histogram observed between two scrapes: how many, their mean, the bucket bound under which 99 %
    (and all) of them fell, and the share over `over_s`. None when the service does not have it."""
    count_after, sum_after, buckets_after = _histogram(after, family)
    if not buckets_after:
        return None
    count_before, sum_before, buckets_before = _histogram(before, family)
    count = count_after - count_before
    if count <= 0:
        return {"count": 0}
    cumulative = sorted((bound, buckets_after[bound] - buckets_before.get(bound, 0.0)) for bound in buckets_after)

    def bound_of(share: float) -> float | None:
        bound = next((b for b, n in cumulative if n >= share * count), math.inf)
        return None if math.isinf(bound) else round(bound * 1000, 2)

    within = next((n for b, n in cumulative if b >= over_s), count)
    return {
        "count": int(count),
        "mean_ms": round((sum_after - sum_before) / count * 1000, 3),
        "p99_under_ms": bound_of(0.99),
        "max_under_ms": bound_of(1.0),
        f"over_{over_s * 1000:g}ms_share": round((count - within) / count, 3),
    }


def process_view(before: Samples, after: Samples) -> dict[str, Any]:
    """The pool's checkout waits and the event loop's lag between two scrapes of one service."""
    return {
        "pool_wait": histogram_delta(before, after, POOL_WAIT),
        "loop_lag": histogram_delta(before, after, LOOP_LAG),
    }


def brief(view: dict[str, Any], units: int) -> str:
    """One line of a note: checkouts per unit and their waits, and the loop's lag."""
    parts = []
    wait = view.get("pool_wait")
    if wait and wait.get("count"):
        per = f"{wait['count'] / units:.1f}/unit, " if units > 0 else ""
        parts.append(f"pool checkouts {per}wait mean {wait['mean_ms']} ms, p99 <= {wait['p99_under_ms']} ms")
    lag = view.get("loop_lag")
    if lag and lag.get("count"):
        parts.append(
            f"loop lag mean {lag['mean_ms']} ms, p99 <= {lag['p99_under_ms']} ms,"
            f" {lag['over_10ms_share'] * 100:.0f}% of samples over 10 ms"
        )
    return "; ".join(parts)
