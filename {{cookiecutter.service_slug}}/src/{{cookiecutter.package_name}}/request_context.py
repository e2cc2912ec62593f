"""Per-request context: a request id and the request's deadline, as pure ASGI middleware.

Pure ASGI (not ``BaseHTTPMiddleware``) because it runs on every request: it adds two context
variables and one response header, nothing else. The request id comes from an inbound
``X-Request-ID`` when it is well formed, otherwise a fresh one; the deadline from an inbound
deadline header (remaining milliseconds) when present, capped by the service's default.
"""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .downstream.deadline import reset_deadline, start_deadline

REQUEST_ID_HEADER = b"x-request-id"
WELL_FORMED_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, deadline_header: str, default_deadline: float) -> None:
        self.app = app
        self.deadline_header = deadline_header.lower().encode("latin-1")
        self.default_deadline = default_deadline

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
            request_id = uuid.uuid4().hex.encode("ascii")
        budget = self.default_deadline
        if deadline_ms.isdigit():
            budget = min(budget, int(deadline_ms) / 1000)
        deadline_token = start_deadline(budget)
        structlog.contextvars.bind_contextvars(request_id=request_id.decode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            reset_deadline(deadline_token)
