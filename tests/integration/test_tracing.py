"""OpenTelemetry tracing through the real services, broker and database: one trace from the HTTP request through
the outbox and Kafka to each consumer and to each webhook attempt (spans kept by the SDK's in-memory exporter),
and log lines of consumed events carrying the trace, the span and the event."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, StatusCode

from services.planning_service.app import build_app as build_planning
from services.promotion_service.app import build_app as build_promotion
from services.returns_service.app import build_app as build_returns
from services.returns_service.settings import ReturnsSettings
from tests.integration.test_promotion_flow import promotion_body
from tests.integration.test_webhooks_delivery import Receiver, critical, register, serving
from tests.support import bearer, eventually, running

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
_EXPORTER = InMemorySpanExporter()


class _Switch(Sampler):
    """Records spans only during the tests that use them: the provider outlives them (one per process), and the
    tests after must not fill memory with spans."""

    on = False

    def should_sample(
        self, parent_context: Any, trace_id: int, name: str, kind: Any = None, attributes: Any = None, *_: Any
    ) -> SamplingResult:
        # The span's attributes are the ones a sampler passes on.
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes) if self.on else SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "on during tracing tests"


_SWITCH = _Switch()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider keeps every span in memory (set once: OpenTelemetry allows one provider per
    process); the instrumentation the services turn on is turned off again after the test."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(sampler=_SWITCH)
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    _SWITCH.on = True
    try:
        yield _EXPORTER
    finally:
        _SWITCH.on = False
        for instrumentor in (AsyncPGInstrumentor(), HTTPXClientInstrumentor()):
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        _EXPORTER.clear()


def consumed_by(finished: tuple[ReadableSpan, ...], group: str) -> list[ReadableSpan]:
    return [
        s
        for s in finished
        if s.name == "process salesops.promotions"
        and (s.attributes or {}).get("messaging.consumer.group.name") == group
    ]


async def test_one_trace_runs_from_the_request_through_the_outbox_and_kafka_to_each_consumer(
    settings, api_keys, spans, capfd
):
    settings.otel_enabled = True
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(running(build_promotion(settings)))
        await stack.enter_async_context(running(build_planning(settings)))
        await stack.enter_async_context(running(build_returns(settings)))
        response = await client.post(
            "/v1/promotions",
            json=promotion_body("TRACED-1"),
            headers={**bearer(api_keys["marketing"]), "traceparent": CALLER},
        )
        assert response.status_code == 201, response.text

        async def both_consumed() -> tuple[ReadableSpan, ...]:
            finished = spans.get_finished_spans()
            return (
                finished
                if consumed_by(finished, "planning-service") and consumed_by(finished, "returns-service")
                else ()
            )

        finished = await eventually(both_consumed, message="the consumers' spans never ended")

    in_trace = [s for s in finished if s.context is not None and format(s.context.trace_id, "032x") == TRACE_ID]
    [server] = [s for s in in_trace if s.kind is SpanKind.SERVER]
    assert server.parent is not None and format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert response.headers["traceparent"] == f"00-{TRACE_ID}-{format(server.context.span_id, '016x')}-01"

    [send] = [s for s in in_trace if s.name == "send salesops.promotions"]
    assert send.kind is SpanKind.PRODUCER
    process = consumed_by(in_trace, "planning-service") + consumed_by(in_trace, "returns-service")
    assert len(process) == 2, "each consumer's processing is a span of the request's trace"
    for span in (send, *process):
        assert span.parent is not None and span.parent.span_id == server.context.span_id
    for span in process:
        attributes: dict[str, Any] = dict(span.attributes or {})
        assert span.kind is SpanKind.CONSUMER
        assert attributes["cloudevents.event_type"] == "salesops.promotion.planned.v1"
        assert attributes["messaging.destination.name"] == "salesops.promotions"
        children = [s for s in in_trace if s.parent is not None and s.parent.span_id == span.context.span_id]
        assert children, f"the database work of {attributes['messaging.consumer.group.name']} is in its span"

    logged = capfd.readouterr().err
    returns_span = format(consumed_by(in_trace, "returns-service")[0].context.span_id, "016x")
    handled = [line for line in logged.splitlines() if "event handled" in line and f"span_id={returns_span}" in line]
    assert handled, "the returns consumer logged the event it handled, in its span"
    assert f"trace_id={TRACE_ID}" in handled[0]
    assert re.search(r"event_id=[0-9a-f-]{36}", handled[0])
    assert "topic=salesops.promotions" in handled[0] and "offset=" in handled[0]


async def test_with_tracing_off_the_trace_id_still_travels_and_salesops_makes_no_span(settings, api_keys, spans):
    async with running(build_promotion(settings)) as client:
        response = await client.post(
            "/v1/promotions",
            json=promotion_body("UNTRACED-1"),
            headers={**bearer(api_keys["marketing"]), "traceparent": CALLER},
        )
    assert response.status_code == 201
    assert response.headers["traceparent"].split("-")[1] == TRACE_ID
    # FastAPI's own telemetry records into any provider set in the process (this test's); salesops adds none.
    scopes = {s.instrumentation_scope.name for s in spans.get_finished_spans() if s.instrumentation_scope}
    assert not {name for name in scopes if name.startswith(("salesops.", "opentelemetry.instrumentation."))}


def _webhook_settings(settings: Any) -> ReturnsSettings:
    return ReturnsSettings(
        **settings.model_dump(),
        webhook_allow_private_targets=True,
        webhook_poll_interval_s=0.05,
        webhook_backoff_initial_s=0.05,
        webhook_backoff_max_s=0.2,
        webhook_timeout_s=2,
    )


async def _complaint_delivered(
    settings: ReturnsSettings, api_keys: dict[str, str], receiver: Receiver, statuses: list[int]
) -> None:
    """A critical complaint, posted in the caller's trace, reaches a registered receiver (after `statuses`)."""
    receiver.statuses = list(statuses)
    async with serving(receiver) as base, running(build_returns(settings)) as client:
        await register(client, api_keys["crm"], f"{base}/hooks", event_types=["sales-alert.critical-complaint"])
        response = await client.post(
            "/v1/complaints",
            json=critical("TRACED-C-1"),
            headers={**bearer(api_keys["returns-desk"]), "traceparent": CALLER},
        )
        assert response.status_code == 201, response.text

        async def answered() -> bool:
            return len(receiver.requests) > len(statuses)

        await eventually(answered, message="the webhook never arrived")


async def test_each_webhook_attempt_is_a_span_of_the_trace_that_raised_the_alert(settings, api_keys, spans):
    settings.otel_enabled = True
    receiver = Receiver()
    await _complaint_delivered(_webhook_settings(settings), api_keys, receiver, statuses=[503])

    async def both_attempts_ended() -> list[ReadableSpan]:
        attempts = [s for s in spans.get_finished_spans() if s.name == "deliver webhook"]
        return attempts if len(attempts) == 2 else []

    failed, delivered = sorted(await both_attempts_ended(), key=lambda s: s.start_time or 0)
    finished = spans.get_finished_spans()
    [server] = [
        s
        for s in finished
        if s.kind is SpanKind.SERVER and s.name.startswith("POST /v1/complaints") and s.context is not None
    ]
    for attempt in (failed, delivered):
        assert attempt.context is not None and format(attempt.context.trace_id, "032x") == TRACE_ID
        assert attempt.parent is not None and attempt.parent.span_id == server.context.span_id, (
            "the delivery continues the request that raised the alert"
        )
        assert attempt.kind is SpanKind.PRODUCER
    assert failed.status.status_code is StatusCode.ERROR and "503" in (failed.status.description or "")
    assert delivered.status.status_code is not StatusCode.ERROR

    # The receiver continues the trace from the attempt's span (or the HTTP call's, a child of it).
    sent = [headers["traceparent"] for _, headers in receiver.requests]
    assert all(value.split("-")[1] == TRACE_ID for value in sent)
    ids = {format(s.context.span_id, "016x"): s for s in finished if s.context is not None}
    for value, attempt in zip(sent, (failed, delivered), strict=True):
        span = ids[value.split("-")[2]]
        assert span is attempt or (span.parent is not None and span.parent.span_id == attempt.context.span_id)


async def test_with_tracing_off_the_webhook_still_carries_the_alerts_trace(settings, api_keys, spans):
    receiver = Receiver()
    await _complaint_delivered(_webhook_settings(settings), api_keys, receiver, statuses=[])
    [(_, headers)] = receiver.requests
    assert headers["traceparent"].split("-")[1] == TRACE_ID
    scopes = {s.instrumentation_scope.name for s in spans.get_finished_spans() if s.instrumentation_scope}
    assert not {name for name in scopes if name.startswith("salesops.")}
