"""The small pieces of the plumbing on their own: the consumer-group rule, noticing a broker that lost its state,
dead letters that fit one record, when tracing is on, and the metrics helpers services count with."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from prometheus_client import generate_latest

from services.fulfillment_service.app import build_app as build_fulfillment
from services.planning_service.app import build_app as build_planning
from services.promotion_service.app import build_app as build_promotion
from services.returns_service.app import build_app as build_returns
from shared import rewind
from shared.dead_letter import dead_letter_headers, fit_to_record
from shared.kafka import record_size
from shared.metrics import Metrics
from shared.settings import Settings
from shared.subscription import consumer_group
from shared.tracing import Tracing, otel_configured, tracing_for

BUILDERS = {
    "promotion": build_promotion,
    "fulfillment": build_fulfillment,
    "planning": build_planning,
    "returns": build_returns,
}


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
def test_every_service_names_its_consumer_group_by_one_rule(build):
    spec = build(Settings()).state.spec
    assert spec.subscriptions, f"{spec.name} consumes nothing"
    assert [s.name for s in spec.subscriptions] == [consumer_group(spec.name)]


class FakeAdmin:
    """Answers `describe_cluster` with the ids given, one a call (a broker restarted in between)."""

    def __init__(self, *cluster_ids: str | Exception) -> None:
        self._answers = list(cluster_ids)

    async def describe_cluster(self) -> dict[str, Any]:
        answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"cluster_id": answer}


async def test_a_new_cluster_id_rebuilds_the_consumer_and_rewinds_for_a_while(monkeypatch):
    monkeypatch.setattr(rewind, "CHECK_INTERVAL_S", 0.0)
    watch = rewind.ClusterWatch("test-service")
    admin: Any = FakeAdmin("cluster-a", ConnectionError("down"), "cluster-a", "cluster-b", "cluster-b")
    await watch.check(admin)
    await watch.check(admin)  # unreachable: the fetcher's business, not a change
    await watch.check(admin)
    assert not watch.rewinding
    with pytest.raises(rewind.BrokerChanged):
        await watch.check(admin)
    assert watch.rewinding
    await watch.check(admin)  # the same new cluster: nothing to do again


async def test_checks_are_spaced_by_the_interval():
    watch = rewind.ClusterWatch("test-service")
    admin: Any = FakeAdmin("cluster-a")
    await watch.check(admin)
    await watch.check(admin)  # within the interval: the broker is not asked (FakeAdmin would run dry)


def record(value: bytes, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="salesops.warehouse-reports",
        partition=2,
        offset=41,
        timestamp=0,
        timestamp_type=0,
        key=b"DC-EAST",
        value=value,
        checksum=None,
        serialized_key_size=7,
        serialized_value_size=len(value),
        headers=headers or [],
    )


def test_dead_letter_headers_keep_the_original_ones_and_say_where_from_and_why():
    message = record(b"{}", [("ce_id", b"x")])
    headers = dict(dead_letter_headers(message, consumer="fulfillment-service", reason="not-json", detail="x" * 3000))
    assert headers["ce_id"] == b"x"
    assert headers["dlq-reason"] == b"not-json"
    assert len(headers["dlq-detail"]) == 2000
    assert (headers["dlq-original-topic"], headers["dlq-original-partition"], headers["dlq-original-offset"]) == (
        b"salesops.warehouse-reports",
        b"2",
        b"41",
    )
    assert headers["dlq-consumer"] == b"fulfillment-service"


def test_a_dead_letter_too_large_for_one_record_is_cut_to_fit_and_says_so():
    headers = [("dlq-reason", b"event-too-large")]
    small, kept = fit_to_record(b"k", b"x" * 100, headers, max_bytes=10_000)
    assert (small, kept) == (b"x" * 100, headers)
    value, cut_headers = fit_to_record(b"k", b"x" * 50_000, headers, max_bytes=10_000)
    assert dict(cut_headers)["dlq-truncated-from-bytes"] == b"50000"
    assert record_size(b"k", value, cut_headers) <= 10_000
    assert value == b"x" * len(value) and len(value) > 9_000


def test_tracing_is_off_unless_configured():
    assert not otel_configured(Settings(), {})
    assert otel_configured(Settings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert otel_configured(Settings(), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert otel_configured(Settings(otel_enabled=True), {})
    assert not otel_configured(Settings(otel_enabled=True), {"OTEL_SDK_DISABLED": "true"})
    assert type(tracing_for("promotion", Settings())) is Tracing


def test_without_opentelemetry_every_step_is_a_new_span_of_the_callers_trace():
    tracing = Tracing()
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    request = tracing.request_traceparent(parent)
    assert request.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736" and request != parent
    event: Any = SimpleNamespace(traceparent=request)
    with tracing.consuming(event, delivery=None) as consumed:  # type: ignore[arg-type]
        assert consumed.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736" and consumed != request
    with tracing.delivering(consumed, endpoint="e1", url="https://crm.example/hook") as headers:
        assert headers["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    with tracing.delivering(None, endpoint="e1", url="https://crm.example/hook") as headers:
        assert headers == {}


def test_stream_and_webhook_helpers_count_per_stream_and_endpoint():
    metrics = Metrics()

    def open_streams() -> float | None:
        return metrics.registry.get_sample_value("salesops_sse_streams_open", {"stream": "alerts"})

    with metrics.streams.open("alerts"), metrics.streams.open("alerts"):
        assert open_streams() == 2
    with pytest.raises(RuntimeError), metrics.streams.open("alerts"):
        raise RuntimeError("client went away")
    assert open_streams() == 0

    metrics.webhooks.backlog("ep-1", 7)
    metrics.webhooks.attempt("ep-1", ok=False)
    metrics.webhooks.attempt("ep-1", ok=True)
    metrics.webhooks.attempt("ep-1", ok=True)
    text = generate_latest(metrics.registry).decode()
    assert 'salesops_webhook_backlog_deliveries{endpoint="ep-1"} 7.0' in text
    assert 'salesops_webhook_attempts_total{endpoint="ep-1",outcome="delivered"} 2.0' in text
    assert 'salesops_webhook_attempts_total{endpoint="ep-1",outcome="failed"} 1.0' in text
    metrics.webhooks.forget("ep-1")
    metrics.webhooks.forget("never-seen")
    assert 'endpoint="ep-1"' not in generate_latest(metrics.registry).decode()
