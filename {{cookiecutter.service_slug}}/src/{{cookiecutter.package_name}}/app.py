"""The application factory: ``create_app(settings)`` wires routes, middleware and the lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from .lifespan import lifespan
from .log_config import configure_logging
from .problems import install_problem_handlers
from .request_context import RequestContextMiddleware
from .routes import debug, health, items, metrics
from .settings import Settings, load_settings

SERVICE_TITLE = {{ cookiecutter.project_name | tojson }}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; with no settings they are read from the environment."""
    settings = settings or load_settings()
    configure_logging(settings.log_format, settings.log_level)
    app = FastAPI(title=SERVICE_TITLE, lifespan=lifespan)
    app.state.settings = settings
    app.state.ready = False
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(items.router)
    if settings.debug_endpoints:
        app.include_router(debug.router)
    if settings.metrics_endpoint:
        app.include_router(metrics.router)
    app.add_middleware(
        RequestContextMiddleware,
        deadline_header=settings.deadline_header,
        default_deadline=settings.default_deadline_seconds,
    )
    return app
