"""Per-request context: a request id, the request's deadline and its access line, as ASGI.

Pure ASGI (not ``BaseHTTPMiddleware``) because it runs on every request: it adds two context
variables and one response header, and hands the access log its line. The request id comes
from an inbound ``X-Request-ID`` when it is well formed, otherwise a fresh one; the deadline from
an inbound deadline header (remaining milliseconds) when present, capped by the service's
default. With tracing on, the inbound span's ``trace_id``/``span_id`` are bound too.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .access_log import AccessLog
from .downstream.deadline import reset_deadline, start_deadline

REQUEST_ID_HEADER = b"x-request-id"
WELL_FORMED_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        deadline_header: str,
        default_deadline: float,
        access_log: AccessLog | None = None,
        trace_ids: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.app = app
        self.deadline_header = deadline_header.lower().encode("latin-1")
        self.default_deadline = default_deadline
        self.access_log = access_log
        self.trace_ids = trace_ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        deadline_ms = b""
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER and WELL_FORMED_ID.match(value):
                request_id = value
            elif name == self.deadline_header:
                deadline_ms = value
        if not request_id:
            request_id = os.urandom(16).hex().encode("ascii")  # uuid4().hex without the UUID
        budget = self.default_deadline
        if deadline_ms.isdigit():
            budget = min(budget, int(deadline_ms) / 1000)
        started = time.perf_counter()
        deadline_token = start_deadline(budget)
        request_id_text = request_id.decode("ascii")
        structlog.contextvars.bind_contextvars(request_id=request_id_text)
        if self.trace_ids is not None:  # inside the inbound span: its ids join logs to traces
            structlog.contextvars.bind_contextvars(**self.trace_ids())
        status = 0  # no response started (the client went away first)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            if self.trace_ids is not None:
                structlog.contextvars.unbind_contextvars("trace_id", "span_id")
            reset_deadline(deadline_token)
            if self.access_log is not None and status:
                self.access_log.record(
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration=time.perf_counter() - started,
                    request_id=request_id_text,
                )
