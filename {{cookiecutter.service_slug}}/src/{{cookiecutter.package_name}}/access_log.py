"""The JSON access log: one line per request, written without going through ``logging``.

uvicorn's access log runs through stdlib logging and structlog's ProcessorFormatter: a
LogRecord, a dozen processors and a write syscall per line. On the benchmark machine that was
88 us a line, structlog's own fast path (``BytesLogger``) 39 us, and this 9 us: one
``json.dumps`` into a buffer written out at most ``FLUSH_SECONDS`` later, at shutdown, or when
it holds a pipe's atomic write (``PIPE_BUF``). Each write ends on a line boundary and is at most
``PIPE_BUF`` bytes, so the lines of several workers sharing one stdout never tear.

A line has the shape of every other (timestamp, level, logger, event, request_id) plus method,
path, status and duration_ms. The query string is never logged: it is where tokens travel.
In a terminal (console format) uvicorn's readable access line is kept instead.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import select
import sys
import time
from collections.abc import Callable
from typing import Final

FLUSH_SECONDS: Final = 0.5
PIPE_BUF: Final = getattr(select, "PIPE_BUF", 4096)


class AccessLog:
    """Buffers access lines for ``write``, which takes whole lines (see ``to_stdout``)."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._lines: list[bytes] = []
        self._size = 0
        self._flush_scheduled = False
        self._second = -1
        self._second_text = ""

    def record(
        self, *, method: str, path: str, status: int, duration: float, request_id: str
    ) -> None:
        line = json.dumps(
            {
                "event": "request",
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration * 1000, 3),
                "request_id": request_id,
                "level": "info",
                "logger": "access",
                "timestamp": self._timestamp(),
            },
            separators=(",", ":"),
        ).encode()
        self._lines.append(line + b"\n")
        self._size += len(line) + 1
        if self._size >= PIPE_BUF:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write every buffered line, in whole-line writes of at most PIPE_BUF bytes."""
        self._flush_scheduled = False
        lines, self._lines, self._size = self._lines, [], 0
        chunk = b""
        for line in lines:
            if chunk and len(chunk) + len(line) > PIPE_BUF:
                self._write(chunk)
                chunk = b""
            chunk += line
        if chunk:
            self._write(chunk)

    def _timestamp(self) -> str:
        """ISO 8601 in UTC with microseconds, as structlog's TimeStamper writes it; the date and
        time of day are formatted once a second."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1_000_000):06d}Z"


def to_stdout() -> AccessLog:
    """Straight to stdout's file descriptor; through ``sys.stdout`` when it has none (a test's
    captured output)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):

        def write_text(data: bytes) -> None:
            sys.stdout.write(data.decode())
            sys.stdout.flush()

        return AccessLog(write_text)

    def write_fd(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return AccessLog(write_fd)
