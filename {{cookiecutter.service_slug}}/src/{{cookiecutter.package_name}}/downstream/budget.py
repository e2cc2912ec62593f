"""Retry budget: retries may add only a bounded fraction to the load on a downstream.

Why it exists: a per-request limit ("3 attempts") still triples the load on a downstream
that is already failing, which turns a brown-out into an outage. Finagle's RetryBudget
bounds retries by a ratio of recent original requests, plus a small floor so a quiet
client can still retry; it has no Python port, and tenacity and stamina decide each call
on its own, with no view of the client's overall traffic. This is that budget; its size is
``config.RetrySettings`` (``BUDGET_RATIO``, ``BUDGET_MIN_PER_SECOND``,
``BUDGET_WINDOW_SECONDS``), the one place its defaults are written.

No method awaits or locks: one budget is safe for every task on a loop, but it is not
thread-safe.
"""

import time
from collections.abc import Callable

from .config import RetrySettings

# ratio * deposits is a float product (0.29 * 100 == 28.999999999999996): the slack lets
# the 29th retry through instead of refusing it for a rounding error.
_ROUNDING_SLACK = 1e-9


class RetryBudget:
    """Finagle-style retry budget over a sliding window of ``budget_window_seconds``.

    Retries allowed in the window are
    ``budget_min_per_second * window + budget_ratio * deposits - withdrawals``.
    Call deposit() for each original request and try_withdraw() before each retry;
    send the retry only if it returned True.
    """

    __slots__ = (
        "_bucket_deposits",
        "_bucket_withdrawals",
        "_clock",
        "_deposits",
        "_newest_second",
        "_ratio",
        "_reserve",
        "_withdrawals",
        "exhausted_count",
    )

    def __init__(
        self,
        config: RetrySettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._ratio = config.budget_ratio
        self._reserve = config.budget_min_per_second * config.budget_window_seconds
        # Ring of one-second buckets, index = second % window. Running totals make
        # each call O(1); buckets expire lazily, when the clock has moved on.
        self._bucket_deposits = [0] * config.budget_window_seconds
        self._bucket_withdrawals = [0] * config.budget_window_seconds
        self._deposits = 0
        self._withdrawals = 0
        self._newest_second = int(clock())
        self.exhausted_count = 0  # retries refused because the budget was spent

    def deposit(self) -> None:
        """Count one original (first-attempt) request."""
        index = self._expire_buckets()
        self._bucket_deposits[index] += 1
        self._deposits += 1

    def try_withdraw(self) -> bool:
        """Spend one retry; False means the budget is spent: do not send the retry."""
        index = self._expire_buckets()
        if self._available() < 1.0 - _ROUNDING_SLACK:
            self.exhausted_count += 1
            return False
        self._bucket_withdrawals[index] += 1
        self._withdrawals += 1
        return True

    def balance(self) -> float:
        """Retries available right now."""
        self._expire_buckets()
        return max(0.0, self._available())

    def _available(self) -> float:
        return self._reserve + self._ratio * self._deposits - self._withdrawals

    def _expire_buckets(self) -> int:
        """Zero the buckets that left the window; return the current bucket's index.

        Each second's bucket is zeroed once, so this is O(1) amortised and never more
        than ttl_seconds steps. A clock that steps back is treated as standing still.
        """
        second = int(self._clock())
        newest = self._newest_second
        size = len(self._bucket_deposits)
        if second <= newest:  # the common case under load: same second
            return newest % size
        if second - newest >= size:
            self._bucket_deposits = [0] * size
            self._bucket_withdrawals = [0] * size
            self._deposits = self._withdrawals = 0
            self._newest_second = second
        else:
            deposits = self._bucket_deposits
            withdrawals = self._bucket_withdrawals
            for stale in range(newest + 1, second + 1):
                index = stale % size
                self._deposits -= deposits[index]
                self._withdrawals -= withdrawals[index]
                deposits[index] = withdrawals[index] = 0
            self._newest_second = second
        return second % size
