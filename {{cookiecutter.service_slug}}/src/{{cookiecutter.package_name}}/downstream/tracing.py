"""What one attempt went through, read from httpcore's ``trace`` request extension.

The pool emits no "waiting for a connection" event, so pool wait is the time from the attempt's
start to its first connect or send event. The same record tells whether an HTTP/2 request's
headers ever left (a request refused by a GOAWAY before that was never processed, so it is safe
to retry whatever its method) and whether the connection was new or reused.
"""

from __future__ import annotations

import time
from typing import Any

FIRST_WORK_EVENTS = frozenset(
    {
        "connection.connect_tcp.started",
        "connection.connect_unix_socket.started",
        "http11.send_request_headers.started",
        "http2.send_request_headers.started",
    }
)
HEADERS_SENT_EVENTS = frozenset(
    {"http11.send_request_headers.complete", "http2.send_request_headers.complete"}
)


class AttemptTrace:
    """Async trace callback for one attempt (httpcore calls it with ``(event_name, info)``)."""

    __slots__ = ("connected", "headers_sent", "pool_wait", "started", "stream_id")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.pool_wait: float | None = None
        self.connected = False
        self.headers_sent = False
        self.stream_id: int | None = None

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if self.pool_wait is None and name in FIRST_WORK_EVENTS:
            self.pool_wait = time.perf_counter() - self.started
        if name == "connection.connect_tcp.complete":
            self.connected = True
        elif name in HEADERS_SENT_EVENTS:
            self.headers_sent = True
        elif name == "http2.send_request_headers.started":
            self.stream_id = info.get("stream_id")

    def never_processed(self, exc: BaseException) -> bool:
        """True when a failed HTTP/2 attempt provably never reached the server's application."""
        if self.stream_id is None:  # not HTTP/2: an HTTP/1.1 server may have seen the request
            return False
        if not self.headers_sent:
            return True
        cause = exc.__cause__
        event = cause.args[0] if cause is not None and cause.args else None
        last_stream_id = getattr(event, "last_stream_id", None)
        return isinstance(last_stream_id, int) and self.stream_id > last_stream_id
