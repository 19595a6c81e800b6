"""Tracing: one trace from an HTTP request through the outbox, Kafka, the workflow and on.

Off by default. With ``GRANTFLOW_OTLP_ENDPOINT`` set, ``configure_tracing`` installs a
tracer provider that exports over OTLP/HTTP (a test installs its own with
``use_tracer_provider``). When tracing is off nothing is instrumented, so it costs nothing.

The trace context (W3C ``traceparent``) travels:

- into a service with the HTTP request (``trace_http``: a server span per request);
- into the outbox row's headers with every event a use case publishes
  (``shared.messaging.outbox.message_headers``), so it survives the commit, a relay
  restart and a broker that forgets;
- onto Kafka: the relay publishes each row in a producer span, child of the stored
  context (``publishing``), whose context the message carries;
- into every consumer: a consumer span, child of the message's context, around the use
  case (``trace_consumers``); what the use case publishes carries it on;
- into Temporal: the bridge starts and signals workflows inside its consumer span, and
  ``temporal_interceptors`` carries the context into the workflow and its activities,
  whose outbox rows carry it out again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from faststream.kafka import KafkaBroker
from faststream.middlewares import BaseMiddleware
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from shared.settings import CommonSettings

TRACER_NAME = "grantflow"
SERVICE_ATTRIBUTE = "grantflow.service"
# Health, readiness and metrics are polled every few seconds: no trace of them.
UNTRACED_PATHS = "healthz,readyz,metrics"


_provider: trace.TracerProvider | None = None


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Record what is built from now on into ``provider`` (None: build untraced again).

    Kept here rather than as OpenTelemetry's global provider, which can be set only once:
    a test traces the apps it builds into an in-memory exporter and leaves the next alone.
    """
    global _provider
    _provider = provider


def tracing_enabled() -> bool:
    """Whether what this process builds now records spans."""
    return _provider is not None


def configure_tracing(settings: CommonSettings, service: str) -> bool:
    """Export this process's spans to ``settings.otlp_endpoint``, once; whether it traces."""
    if tracing_enabled():
        return True
    if not settings.otlp_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": f"grantflow-{service}",
                "service.namespace": "grantflow",
                "deployment.environment": settings.environment,
            }
        ),
        # Decided where a trace begins; every process after that follows the decision.
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    exporter = OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    use_tracer_provider(provider)
    return True


def traces_url(endpoint: str) -> str:
    """The collector's traces URL: a base URL gets OTLP/HTTP's ``/v1/traces``."""
    if urlsplit(endpoint).path.strip("/"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def tracer() -> trace.Tracer:
    provider = _provider or trace.NoOpTracerProvider()
    return provider.get_tracer(TRACER_NAME)


def current_trace_headers() -> dict[str, str]:
    """The current span's context as message headers; empty outside a span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


# -- HTTP ----------------------------------------------------------------------------------


def trace_http(app: Any, service: str) -> None:
    """A server span for every request to ``app`` (a FastAPI app), named by its route."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    def name_the_service(span: trace.Span, _scope: dict[str, Any]) -> None:
        if span.is_recording():
            span.set_attribute(SERVICE_ATTRIBUTE, service)

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        server_request_hook=name_the_service,
        excluded_urls=UNTRACED_PATHS,
        exclude_spans=["receive", "send"],
    )


# -- Kafka ---------------------------------------------------------------------------------


@contextlib.contextmanager
def publishing(
    topic: str, key: str, headers: dict[str, str], service: str
) -> Iterator[dict[str, str]]:
    """A producer span for one outbox row, child of the context stored with it; the headers
    to publish, carrying the producer span's context."""
    if not tracing_enabled():
        yield headers
        return
    with tracer().start_as_current_span(
        f"publish {topic}",
        context=propagate.extract(headers),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.kafka.message.key": key,
            "messaging.message.id": headers.get("event_id", ""),
            SERVICE_ATTRIBUTE: service,
        },
    ):
        carried = dict(headers)
        propagate.inject(carried)
        yield carried


class _ConsumerSpan(BaseMiddleware[Any, Any]):
    """A consumer span around the handling of one message, child of the message's context."""

    def __init__(self, msg: Any, /, *, context: Any, service: str) -> None:
        super().__init__(msg, context=context)
        self.service = service

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        headers: Mapping[str, str] = msg.headers or {}
        record = msg.raw_message
        topic = str(getattr(record, "topic", "kafka"))
        key = getattr(record, "key", None) or b""
        with tracer().start_as_current_span(
            f"process {topic}",
            context=propagate.extract(dict(headers)),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": topic,
                "messaging.kafka.destination.partition": int(getattr(record, "partition", -1)),
                "messaging.kafka.message.offset": int(getattr(record, "offset", -1)),
                # The application's id: one application's events share it.
                "messaging.kafka.message.key": bytes(key).decode(errors="replace"),
                "messaging.message.id": headers.get("event_id", ""),
                "grantflow.event_type": headers.get("event_type", ""),
                SERVICE_ATTRIBUTE: self.service,
            },
        ):
            return await call_next(msg)


def trace_consumers(broker: KafkaBroker, service: str) -> None:
    """Every subscriber of ``broker`` handles each message inside a consumer span."""

    def middleware(msg: Any, /, *, context: Any) -> _ConsumerSpan:
        return _ConsumerSpan(msg, context=context, service=service)

    # Outermost: the dead-letter policy's retries and their outcome are inside the span.
    broker.insert_middleware(middleware)


# -- Temporal ------------------------------------------------------------------------------


def temporal_interceptors() -> list[Any]:
    """The client interceptors that carry the trace into workflows and activities (the
    worker built on the client inherits them)."""
    if not tracing_enabled():
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer())]
