"""OpenTelemetry tracing, configured only by the standard ``OTEL_*`` variables.

Tracing is on when an exporter is configured: ``OTEL_TRACES_EXPORTER`` names one (``otlp`` or
``console``), or it is unset and ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``)
is set; ``otlp`` is OTLP over HTTP/protobuf (no grpcio in the image, and every collector takes
it on 4318). With none, or ``OTEL_TRACES_EXPORTER=none`` or ``OTEL_SDK_DISABLED=true``, the
service gets ``spans.NO_SPANS``: no provider, no instrumentation, nothing sent, nothing paid.
A process already given an SDK provider (``opentelemetry-instrument``) keeps it.

What a trace holds: FastAPI's own server span (its native telemetry, given this provider, so it
never looks up the global ones per request); one span per downstream call, opened at admission
(breaker state, bulkhead wait, shed or refused reason, outcome, error type); under it one
CLIENT span per attempt from the maintained httpx instrumentation, applied to each shared
client's transport (so the aiohttp engine's direct sends are traced too), which also sends
``traceparent``/``tracestate``; the hooks below add the attempt number, the retry reason and
back-off before it, the deadline left, the pool wait, and drop the query from ``url.full``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from contextvars import Token
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.httpx import (
    HTTPX2ClientInstrumentor,
    HTTPXClientInstrumentor,
    RequestInfo,
    ResponseInfo,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import Span, Status, StatusCode

from .downstream.breaker import CircuitBreaker
from .downstream.errors import DownstreamError
from .downstream.httplib import httpx
from .downstream.spans import NO_SPANS, CallSpan, Spans
from .downstream.tracing import AttemptTrace
from .redaction import redact_text
from .settings import SettingsError

EXPORTERS = ("otlp", "console", "none")
OTLP_PROTOCOL = "http/protobuf"
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})  # every few seconds, never interesting
CALL_KEY = context.create_key("downstream-call")
URL_KEYS = frozenset({"url.full", "http.url"})  # stable and older HTTP conventions
INSTRUMENTOR = {"httpx": HTTPXClientInstrumentor, "httpx2": HTTPX2ClientInstrumentor}[
    httpx.__name__
]


def exporter_names(environ: MutableMapping[str, str]) -> list[str]:
    """The configured exporters (empty: tracing off), or ``SettingsError`` naming the variable."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    endpoint = any(
        environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    value = environ.get("OTEL_TRACES_EXPORTER", "otlp" if endpoint else "none")
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    for name in names:
        if name not in EXPORTERS:
            raise SettingsError(
                f"OTEL_TRACES_EXPORTER={value!r}: use one of {', '.join(EXPORTERS)}"
            )
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable)
        if "otlp" in names and protocol and protocol != OTLP_PROTOCOL:
            raise SettingsError(f"{variable}={protocol!r}: this service exports {OTLP_PROTOCOL}")
    return [name for name in names if name != "none"]


def span_exporter(name: str) -> SpanExporter:
    return OTLPSpanExporter() if name == "otlp" else ConsoleSpanExporter()


def resource(service: str, environ: MutableMapping[str, str]) -> Resource:
    """``OTEL_SERVICE_NAME``, or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``; else the slug."""
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    return Resource.create() if named else Resource.create({SERVICE_NAME: service})


def tracing_for(service: str, deadline_header: str) -> Spans:
    """The tracer the ``OTEL_*`` variables ask for, or ``NO_SPANS``."""
    configured = trace.get_tracer_provider()
    if isinstance(configured, TracerProvider):  # set up before us (opentelemetry-instrument)
        return Telemetry(configured, deadline_header, owns_provider=False)
    names = exporter_names(os.environ)
    if not names:
        return NO_SPANS
    provider = TracerProvider(resource=resource(service, os.environ))  # OTEL_TRACES_SAMPLER
    provider.add_span_processor(RedactQuery())
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(span_exporter(name)))  # OTEL_BSP_*
    trace.set_tracer_provider(provider)  # a team's own spans join the same traces
    return Telemetry(provider, deadline_header)


class RedactQuery(SpanProcessor):
    """FastAPI records an inbound ``url.query``: credential-like parameters are masked."""

    def on_start(self, span: SdkSpan, parent_context: context.Context | None = None) -> None:
        query = (span.attributes or {}).get("url.query")
        if isinstance(query, str):
            span.set_attribute("url.query", redact_text(query))


class DownstreamCall:
    """The OpenTelemetry ``CallSpan``: current from admission until the ticket's release."""

    __slots__ = ("attempts", "backoff", "retry_reason", "span", "token")

    def __init__(self, tracer: trace.Tracer, downstream: str, method: str, route: str) -> None:
        self.span = tracer.start_span(
            f"{downstream} {method} {route}",
            attributes={
                "downstream.name": downstream,
                "http.request.method": method,
                "url.template": route,
            },
        )
        self.attempts = 0
        self.retry_reason: str | None = None
        self.backoff = 0.0
        ctx = trace.set_span_in_context(self.span)
        self.token: Token[context.Context] | None = context.attach(
            context.set_value(CALL_KEY, self, ctx)
        )

    def admitted(self, breaker: CircuitBreaker) -> None:
        self.span.add_event("bulkhead.admitted")  # the wait is the time from the span's start
        self.span.set_attribute("downstream.breaker.state", breaker.state.value)

    def refused(self, reason: str, exc: BaseException) -> None:
        self.span.set_attribute("downstream.refused", reason)
        self.failed(exc)
        self.end()

    def failed(self, exc: BaseException) -> None:
        kind = exc.reason if isinstance(exc, DownstreamError) else type(exc).__name__
        self.span.set_attribute("error.type", kind)
        if not isinstance(exc, DownstreamError) or exc.verdict != "answered":
            self.span.set_status(Status(StatusCode.ERROR, str(exc)))

    def verdict(self, outcome: str) -> None:
        self.span.set_attribute("downstream.outcome", outcome)

    def end(self) -> None:
        if self.token is not None:
            context.detach(self.token)
            self.token = None
            self.span.end()


class Telemetry:
    """The OpenTelemetry implementation of ``downstream.spans.Spans``."""

    enabled = True

    def __init__(
        self, provider: TracerProvider, deadline_header: str, *, owns_provider: bool = True
    ) -> None:
        self.provider = provider
        self.owns_provider = owns_provider
        self.tracer = provider.get_tracer(__name__)
        self.deadline_header = deadline_header
        # The stable HTTP conventions (url.full, http.response.status_code...), unless the
        # environment asks for another mode; read once, when the first client is instrumented.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

    def call(self, downstream: str, method: str, route: str) -> CallSpan:
        return DownstreamCall(self.tracer, downstream, method, route)

    def retry(self, reason: str, attempt: int, backoff: float) -> None:
        call = context.get_value(CALL_KEY)
        if isinstance(call, DownstreamCall):
            call.retry_reason, call.backoff = reason, backoff
            call.span.add_event(
                "retry",
                {
                    "downstream.retry.attempt": attempt,
                    "downstream.retry.reason": reason,
                    "downstream.retry.backoff_s": round(backoff, 4),
                },
            )

    def instrument_client(self, client: httpx.AsyncClient) -> None:
        INSTRUMENTOR.instrument_client(
            client,  # type: ignore[arg-type,unused-ignore]  # its annotation names httpx's types
            tracer_provider=self.provider,
            request_hook=self.attempt_started,
            response_hook=self.attempt_answered,
        )

    async def attempt_started(self, span: Span, request: RequestInfo) -> None:
        recorded = getattr(span, "attributes", None) or {}
        for key in URL_KEYS.intersection(recorded):  # never the query (it may carry secrets)
            url = str(recorded[key])  # the instrumentation already dropped any user-info
            if "?" in url:
                span.set_attribute(key, url.split("?", 1)[0])
        call = context.get_value(CALL_KEY)
        if isinstance(call, DownstreamCall):
            call.attempts += 1
            span.set_attribute("downstream.attempt", call.attempts)
            if call.attempts > 1:
                span.set_attribute("http.request.resend_count", call.attempts - 1)
                span.set_attribute("downstream.retry.reason", call.retry_reason or "unknown")
                span.set_attribute("downstream.retry.backoff_s", round(call.backoff, 4))
        remaining = request.headers.get(self.deadline_header) if request.headers else None
        if remaining and remaining.isdigit():
            span.set_attribute("downstream.deadline.remaining_ms", int(remaining))

    async def attempt_answered(
        self, span: Span, request: RequestInfo, response: ResponseInfo
    ) -> None:
        attempt = (request.extensions or {}).get("trace")
        if isinstance(attempt, AttemptTrace):  # pool wait is measured only where traced
            if attempt.pool_wait is not None:
                span.set_attribute("downstream.pool.wait_s", round(attempt.pool_wait, 6))
            span.set_attribute("downstream.connection.new", attempt.connected)

    def fastapi_telemetry(self, config: TelemetryConfig) -> TelemetryConfig:
        return {
            **config,
            "tracing": True,
            "tracer_provider": self.provider,
            "operation_spans": False,  # the inbound span and the downstream calls tell the story
            "exclude": is_probe,
        }

    def log_ids(self) -> dict[str, str]:
        span_context = trace.get_current_span().get_span_context()
        if not span_context.is_valid:
            return {}
        return {
            "trace_id": trace.format_trace_id(span_context.trace_id),
            "span_id": trace.format_span_id(span_context.span_id),
        }

    def shutdown(self) -> None:
        if self.owns_provider:
            self.provider.shutdown()
        else:
            self.provider.force_flush()


def is_probe(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in PROBES
