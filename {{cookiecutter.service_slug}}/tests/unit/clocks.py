"""One fake clock for the unit tests of everything that reads ``time.monotonic``."""

from __future__ import annotations


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
