"""Every error leaves the service as ``application/problem+json`` (RFC 9457).

HTTP errors, validation errors, downstream failures and unexpected exceptions all get a JSON
body with ``type``, ``title``, ``status`` and ``detail``; never an HTML page, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .downstream.errors import DownstreamError
from .downstream.throttle import Throttle

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger(__name__)


def problem(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extensions,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return problem(422, "the request is not valid", errors=errors)


async def downstream_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DownstreamError)
    retry_after = exc.retry_after_header
    return problem(
        exc.status_code,
        exc.detail,
        headers={"Retry-After": retry_after} if retry_after else None,
        downstream=exc.downstream,
        reason=exc.reason,
    )


class UnexpectedErrors:
    """Logs ``request.unhandled_exception`` with its traceback at most once per interval for
    each exception type and route, so a bug hit on every request costs one line a second,
    with ``suppressed_since_last`` counting the rest."""

    MAX_KEYS = 256  # exception types x route templates: bounded even if a bug invents types

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.throttles: dict[tuple[str, str], Throttle] = {}

    async def __call__(self, request: Request, exc: Exception) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", "unrouted")
        key = (type(exc).__qualname__, route)
        throttle = self.throttles.get(key)
        if throttle is None:
            if len(self.throttles) >= self.MAX_KEYS:
                self.throttles.clear()
            throttle = self.throttles[key] = Throttle(self.interval)
        suppressed = throttle.take()
        if suppressed is not None:
            log.error(
                "request.unhandled_exception",
                route=route,
                exception_type=key[0],
                suppressed_since_last=suppressed,
                exc_info=exc,
            )
        return problem(500, "an unexpected error occurred; it has been logged")


def install_problem_handlers(app: FastAPI, *, log_interval: float) -> None:
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DownstreamError, downstream_error)
    app.add_exception_handler(Exception, UnexpectedErrors(log_interval))
