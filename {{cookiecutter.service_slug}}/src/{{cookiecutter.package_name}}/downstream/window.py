"""The breaker's time-based sliding window: calls, failures and slow calls over N seconds.

A ring of one-second buckets, index = second % window_seconds, with running totals, so that
recording a call is O(1); buckets expire lazily, when the clock has moved on. Resilience4j's
time-based window, in whole seconds. Not thread-safe: one event loop owns it.
"""

from __future__ import annotations


class SlidingWindow:
    __slots__ = ("_calls", "_failures", "_newest_second", "_slow", "calls", "failures", "slow")

    def __init__(self, seconds: int, now: int) -> None:
        self._calls = [0] * seconds
        self._failures = [0] * seconds
        self._slow = [0] * seconds
        self.calls = self.failures = self.slow = 0
        self._newest_second = now

    def record(self, second: int, *, failed: bool, slow: bool) -> None:
        index = self.expire(second)
        self._calls[index] += 1
        self.calls += 1
        if failed:
            self._failures[index] += 1
            self.failures += 1
        if slow:
            self._slow[index] += 1
            self.slow += 1

    def expire(self, second: int) -> int:
        """Zero the buckets that left the window; return the current bucket's index.

        Each second's bucket is zeroed once, so this is O(1) amortised and never more
        than window_seconds steps. A clock that steps back is treated as standing still.
        """
        newest = self._newest_second
        size = len(self._calls)
        if second <= newest:  # the common case under load: same second
            return newest % size
        if second - newest >= size:
            self.clear(second)
        else:
            calls, failures, slow = self._calls, self._failures, self._slow
            for stale in range(newest + 1, second + 1):
                index = stale % size
                self.calls -= calls[index]
                self.failures -= failures[index]
                self.slow -= slow[index]
                calls[index] = failures[index] = slow[index] = 0
            self._newest_second = second
        return second % size

    def clear(self, second: int) -> None:
        size = len(self._calls)
        self._calls = [0] * size
        self._failures = [0] * size
        self._slow = [0] * size
        self.calls = self.failures = self.slow = 0
        self._newest_second = second
