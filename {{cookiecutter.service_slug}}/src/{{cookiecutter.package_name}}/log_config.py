"""structlog configured once for the service and for uvicorn's own loggers.

JSON lines when stdout is not a terminal (or ``LOG_FORMAT=json``), a readable console otherwise.
uvicorn's loggers propagate into the same handler, so every line has one shape and carries the
request id bound by ``request_context``. Secrets are redacted by ``redaction`` before rendering.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from .redaction import redact_event

LogFormat = Literal["auto", "json", "console"]

SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    redact_event,
]


def wants_json(log_format: LogFormat) -> bool:
    if log_format == "auto":
        return not sys.stdout.isatty()
    return log_format == "json"


def configure_logging(log_format: LogFormat = "auto", level: str = "info") -> None:
    """Route structlog and stdlib logging (uvicorn included) through one renderer."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if wants_json(log_format)
        else structlog.dev.ConsoleRenderer()
    )
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # Not cached globally: the hot path binds its own logger per downstream at start-up
        # (Downstream.log), so module-level loggers stay free to follow a re-configuration.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED_PROCESSORS,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # httpx logs every request at INFO; the downstream layer reports what matters itself.
    for name in ("httpx", "httpcore", "httpx2", "httpcore2", "hpack"):
        logging.getLogger(name).setLevel(logging.WARNING)
