"""At most one log line per interval for an event that can fire on every call.

While a downstream fails, a warning per call costs the CPU that shedding saves and buries the
one line a person needs. A throttled event is written at most once per interval and carries
``suppressed_since_last``, so the count is never lost. (structlog has no rate limiting, and the
stdlib's logging filters run after the event was built.)
"""

from __future__ import annotations

import time


class Throttle:
    """Decides, per event, whether a line may be written now."""

    __slots__ = ("interval", "last", "suppressed")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = float("-inf")
        self.suppressed = 0

    def take(self) -> int | None:
        """The count suppressed since the last line if one may be written now, else None."""
        now = time.monotonic()
        if now - self.last < self.interval:
            self.suppressed += 1
            return None
        self.last = now
        suppressed, self.suppressed = self.suppressed, 0
        return suppressed
