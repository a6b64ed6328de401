"""`observe_many` leaves a histogram exactly as the same observations one `observe` at a time would."""

from __future__ import annotations

from collections import Counter

from prometheus_client import CollectorRegistry, Histogram

from shared.metrics import observe_many


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def test_observing_many_at_once_gives_the_samples_of_observing_one_at_a_time() -> None:
    # Amounts on the bounds, between them, below the first, past the last, repeated, and a negative one.
    amounts = [0.0, 0.005, 0.0051, 0.3, 0.3, 0.3, 2.5, 7.0, 10.0, 11.0, 1e6, -1.0, 0.1, 0.1]
    one_by_one, at_once = CollectorRegistry(), CollectorRegistry()
    single = Histogram("delay_seconds", "d", ["service"], registry=one_by_one).labels("s")
    for amount in amounts:
        single.observe(amount)
    many = Histogram("delay_seconds", "d", ["service"], registry=at_once).labels("s")
    observe_many(many, Counter(amounts))
    observe_many(many, {})
    assert samples(at_once) == samples(one_by_one)
    assert samples(at_once)[("delay_seconds_count", (("service", "s"),))] == len(amounts)
