"""What one attempt went through, read from httpcore's ``trace`` request extension.

The pool emits no "waiting for a connection" event, so pool wait is the time from the attempt's
start to its first connect or send event. The same record keeps the HTTP/2 stream id, so a
request refused by a GOAWAY (above its ``last_stream_id``, never processed) can be retried
whatever its method, and tells whether the connection was new or reused.
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


class AttemptTrace:
    """Async trace callback for one attempt (httpcore calls it with ``(event_name, info)``)."""

    __slots__ = ("connected", "pool_wait", "started", "stream_id")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.pool_wait: float | None = None
        self.connected = False
        self.stream_id: int | None = None

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if self.pool_wait is None and name in FIRST_WORK_EVENTS:
            self.pool_wait = time.perf_counter() - self.started
        if name == "connection.connect_tcp.complete":
            self.connected = True
        elif name == "http2.send_request_headers.started":
            self.stream_id = info.get("stream_id")

    def never_processed(self, exc: BaseException) -> bool:
        """True when a failed HTTP/2 attempt provably never reached the server's application.

        The only proof is the server's own GOAWAY: streams above its ``last_stream_id`` were not
        processed. A failed write proves nothing: h2 flushes one shared buffer, so another
        stream's write may already have carried this request's HEADERS frame (we measured
        duplicated POSTs when trusting it).
        """
        if self.stream_id is None:  # not HTTP/2: an HTTP/1.1 server may have seen the request
            return False
        cause = exc.__cause__
        event = cause.args[0] if cause is not None and cause.args else None
        last_stream_id = getattr(event, "last_stream_id", None)
        return isinstance(last_stream_id, int) and self.stream_id > last_stream_id
