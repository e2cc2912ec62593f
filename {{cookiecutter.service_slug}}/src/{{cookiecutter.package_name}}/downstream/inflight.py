"""Calls in flight and streams held open, so exhaustion and leaks can name who holds the pool.

Registering a call is one small object and one dict insert; the expensive part (sorting for
the oldest calls, walking open streams) runs only when an exhaustion or leak is reported.
"""

from __future__ import annotations

import heapq
import sys
import time
from typing import Any


class InFlightCall:
    __slots__ = ("attempt", "method", "route", "started")

    def __init__(self, method: str, route: str, started: float) -> None:
        self.method = method
        self.route = route
        self.started = started
        self.attempt = 0

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "age_seconds": round(now - self.started, 3),
            "method": self.method,
            "route": self.route,
            "attempt": self.attempt,
        }


class InFlightCalls:
    """Every call between admission and completion, keyed by identity."""

    def __init__(self) -> None:
        self.calls: dict[int, InFlightCall] = {}

    def start(self, method: str, route: str) -> InFlightCall:
        call = InFlightCall(method, route, time.monotonic())
        self.calls[id(call)] = call
        return call

    def finish(self, call: InFlightCall) -> None:
        self.calls.pop(id(call), None)

    def __len__(self) -> int:
        return len(self.calls)

    def oldest(self, count: int = 3) -> list[dict[str, Any]]:
        now = time.monotonic()
        calls = heapq.nsmallest(count, self.calls.values(), key=lambda c: c.started)
        return [call.describe(now) for call in calls]


class OpenStream:
    __slots__ = ("call_site", "method", "opened", "reported", "route")

    def __init__(self, method: str, route: str, call_site: str) -> None:
        self.method = method
        self.route = route
        self.call_site = call_site
        self.opened = time.monotonic()
        self.reported = False

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "method": self.method,
            "route": self.route,
            "call_site": self.call_site,
            "held_seconds": round(now - self.opened, 3),
        }


class OpenStreams:
    """Streamed responses not closed yet; the monitor reports those held open too long."""

    def __init__(self) -> None:
        self.streams: dict[int, OpenStream] = {}
        self.leaks_reported = 0

    def open(self, method: str, route: str, depth: int = 2) -> OpenStream:
        frame = sys._getframe(depth)  # the caller of `Downstream.stream`, cheaply
        stream = OpenStream(method, route, f"{frame.f_code.co_filename}:{frame.f_lineno}")
        self.streams[id(stream)] = stream
        return stream

    def close(self, stream: OpenStream) -> None:
        self.streams.pop(id(stream), None)

    def held_longer_than(self, seconds: float) -> list[OpenStream]:
        """Streams open past ``seconds`` not reported before; each is reported once."""
        limit = time.monotonic() - seconds
        found = [s for s in self.streams.values() if not s.reported and s.opened < limit]
        for stream in found:
            stream.reported = True
        self.leaks_reported += len(found)
        return found
