"""OpenTelemetry tracing (the `otel` extra): spans for requests, sends, consumption and webhook deliveries, joined
into one trace by the W3C trace context that every event carries in its `traceparent` extension.

Imported only when tracing is configured (`shared.tracing.tracing_for`). A tracer provider set up before the
service starts (by `opentelemetry-instrument`, or a test) is used as it is; otherwise one is made that exports
over OTLP/HTTP to the endpoint of the standard `OTEL_EXPORTER_OTLP_*` variables.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.events import CloudEvent
from shared.observability import child_traceparent
from shared.tracing import Delivery, SendDone, Tracing

_PROPAGATOR = TraceContextTextMapPropagator()
# Probes and scrapes are not worth a trace.
_EXCLUDED_URLS = "/healthz,/readyz,/metrics"


def parent_context(traceparent: str | None) -> Context:
    """The context whose span is `traceparent`; an empty one (a new trace) when there is none or it is invalid."""
    return _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else Context()


def traceparent_of(span: Span, fallback: str | None = None) -> str:
    """The W3C traceparent naming `span`."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent") or child_traceparent(fallback)


class OpenTelemetryTracing(Tracing):
    enabled = True

    def __init__(self, service: str, provider: trace.TracerProvider, *, owns_provider: bool) -> None:
        self._provider = provider
        self._owns_provider = owns_provider
        self._tracer = provider.get_tracer(f"salesops.{service}")

    @classmethod
    def configure(cls, service: str) -> OpenTelemetryTracing:
        provider = trace.get_tracer_provider()
        owns = False
        if isinstance(provider, trace.ProxyTracerProvider):
            name = os.environ.get("OTEL_SERVICE_NAME") or f"salesops-{service}"
            sdk_provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
            sdk_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(sdk_provider)
            provider, owns = sdk_provider, True
        # Process-wide, once: every database call and outgoing HTTP request becomes a span of the current trace.
        for instrumentor in (AsyncPGInstrumentor(), HTTPXClientInstrumentor()):
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument(tracer_provider=provider)
        return cls(service, provider, owns_provider=owns)

    def instrument_app(self, app: FastAPI) -> None:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=self._provider, excluded_urls=_EXCLUDED_URLS, exclude_spans=["receive", "send"]
        )

    def request_traceparent(self, incoming: str | None) -> str:
        span = trace.get_current_span()
        if span.get_span_context().is_valid:
            return traceparent_of(span, incoming)
        return child_traceparent(incoming)

    @contextmanager
    def consuming(self, event: CloudEvent, delivery: Delivery) -> Iterator[str]:
        with self._tracer.start_as_current_span(
            f"process {delivery.topic}",
            context=parent_context(event.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": delivery.topic,
                "messaging.destination.partition.id": str(delivery.partition),
                "messaging.kafka.offset": delivery.offset,
                "messaging.consumer.group.name": delivery.consumer,
                "messaging.message.id": event.id,
                "cloudevents.event_id": event.id,
                "cloudevents.event_type": event.type,
                "cloudevents.event_source": event.source,
            },
        ) as span:
            yield traceparent_of(span, event.traceparent)

    @contextmanager
    def consuming_batch(self, consumer: str, events: Sequence[CloudEvent]) -> Iterator[str | None]:
        # A child of the first event's trace (so one request's events make one trace), linked to all of them.
        links = []
        for event in events:
            context = trace.get_current_span(parent_context(event.traceparent)).get_span_context()
            if context.is_valid:
                links.append(Link(context))
        with self._tracer.start_as_current_span(
            f"process batch {consumer}",
            context=parent_context(events[0].traceparent) if events else Context(),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={"messaging.system": "kafka", "messaging.batch.message_count": len(events)},
        ) as span:
            yield traceparent_of(span)

    def sending(self, payload: bytes, *, topic: str, key: str) -> SendDone:
        try:
            envelope = json.loads(payload)
        except ValueError:
            envelope = {}
        span = self._tracer.start_span(
            f"send {topic}",
            context=parent_context(envelope.get("traceparent")),
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
                "messaging.kafka.message.key": key,
                "messaging.message.id": str(envelope.get("id", "")),
                "cloudevents.event_id": str(envelope.get("id", "")),
                "cloudevents.event_type": str(envelope.get("type", "")),
            },
        )

        def done(error: BaseException | None) -> None:
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()

        return done

    def annotate(self, name: str, attributes: Mapping[str, str | int | float | bool]) -> None:
        trace.get_current_span().add_event(name, dict(attributes))

    def failed(self, reason: str) -> None:
        trace.get_current_span().set_status(Status(StatusCode.ERROR, reason))

    @contextmanager
    def delivering(self, traceparent: str | None, *, endpoint: str, url: str) -> Iterator[dict[str, str]]:
        with self._tracer.start_as_current_span(
            "deliver webhook",
            context=parent_context(traceparent),
            kind=SpanKind.PRODUCER,
            attributes={"salesops.webhook.endpoint": endpoint, "url.full": url},
        ) as span:
            yield {"traceparent": traceparent_of(span, traceparent)}

    def flush(self) -> None:
        if self._owns_provider and isinstance(self._provider, TracerProvider):
            self._provider.force_flush(timeout_millis=5000)
