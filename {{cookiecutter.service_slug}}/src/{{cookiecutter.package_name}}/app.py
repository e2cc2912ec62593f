"""The application factory: ``create_app(settings)`` wires routes, middleware and the lifespan."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from .access_log import to_stdout
from .downstream.declarations import check_routes
from .downstream.httplib import httpx
from .downstream.spans import Spans{% if cookiecutter.opentelemetry != "yes" %}, tracing_for{% endif %}
from .downstreams import declared
from .lifespan import lifespan
from .log_config import configure_logging, wants_json
from .problems import install_problem_handlers
from .request_context import RequestContextMiddleware
from .routes import debug, health, metrics, service_routers
from .settings import Settings, load_settings, resolve_downstreams
{%- if cookiecutter.opentelemetry == "yes" %}
from .telemetry import tracing_for
{%- endif %}

SERVICE_TITLE = {{ cookiecutter.project_name | tojson }}
SERVICE_NAME = {{ cookiecutter.service_slug | tojson }}  # OpenTelemetry's default service.name


# FastAPI's own OpenTelemetry telemetry (0.143+) is off: this service's metrics are Prometheus
# and its logs structlog, and with it on FastAPI looks up three global OpenTelemetry providers
# on every request just to find none configured (3.6 % of a request's CPU in py-spy at C=10).
# When tracing is on, ``spans.fastapi_telemetry`` turns "tracing" on with its own provider
# (no global look-up): FastAPI's span is the inbound one.
FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    settings: Settings | None = None,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    spans: Spans | None = None,
) -> FastAPI:
    """Build the service; with no settings they are read from the environment.

    ``transports`` replaces named downstreams' network transport (a test's scripted fake);
    everything else in their pipeline stays real. ``spans`` replaces the tracer the ``OTEL_*``
    variables configure (a test's in-memory exporter).
    """
    settings = resolve_downstreams(settings or load_settings(), declared.names())
    configure_logging(settings.log_format, settings.log_level)
    spans = spans or tracing_for(SERVICE_NAME, settings.deadline_header)
    telemetry = spans.fastapi_telemetry(FASTAPI_TELEMETRY)
    app = FastAPI(title=SERVICE_TITLE, lifespan=lifespan, telemetry=telemetry)
    app.state.settings = settings
    app.state.spans = spans
    app.state.transports = dict(transports or {})
    app.state.ready = False
    install_problem_handlers(app, log_interval=settings.observability.failure_log_interval_seconds)
    app.include_router(health.router)
    for router in service_routers():
        check_routes(router.routes, settings.downstreams)
        app.include_router(router)
    if settings.debug_endpoints:
        app.include_router(debug.router)
    if settings.metrics_endpoint:
        app.include_router(metrics.router)
    # A JSON access log of its own; uvicorn's (see __main__) only in a terminal, readable.
    # Its lines are INFO, as uvicorn's are: LOG_LEVEL=warning turns both off.
    info = logging.getLevelNamesMapping()[settings.log_level.upper()] <= logging.INFO
    json_access = settings.access_log and info and wants_json(settings.log_format)
    app.state.access_log = to_stdout() if json_access else None
    app.add_middleware(
        RequestContextMiddleware,
        deadline_header=settings.deadline_header,
        default_deadline=settings.default_deadline_seconds,
        access_log=app.state.access_log,
        trace_ids=spans.log_ids if spans.enabled else None,
    )
    return app
