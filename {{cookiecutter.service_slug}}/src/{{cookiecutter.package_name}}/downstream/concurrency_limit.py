"""Adaptive concurrency limit: a bulkhead's width follows the downstream's measured latency.

A fixed ``MAX_CONCURRENCY`` is a guess, and the right number moves with the downstream's health:
too wide and calls queue inside the downstream until their deadline, too narrow and healthy
capacity is refused. No maintained Python library sizes an outbound limit from latency, so this
follows Netflix concurrency-limits' recommended client setup, a ``WindowedLimit`` in front of
``Gradient2Limit``, with three changes its issue tracker and Envoy's gradient controller argue for:

- The baseline is the lowest median RTT of the windows of the last minute, not Gradient2's long
  exponential average, which drifts up during a long overload until the limit creeps back to
  where the overload began. Envoy re-measures its minimum in a window pinned to 3 calls every
  interval, shedding a busy service's traffic each time; here every cut is followed by a window
  at the lower width, whose median is the fresh minimum, and only at start-up does a window run
  at half the limit, halving again while each half is much faster than the window before (a
  service loaded from its first second would otherwise never see the unloaded RTT, and settle
  at twice the width it should, or take many long windows to get down). The unit tests run the
  model downstream for minutes: the baseline does not drift, and a permanently slower
  downstream gets its width back once the old minimum has aged out.
- Headroom (``sqrt(limit)``, Envoy's) is added only when latency has not inflated at all:
  Gradient2 adds its queue allowance always, and at a gradient near 0.8 the limit keeps growing
  (concurrency-limits#134).
- A timeout, a 429 or a 503 is a drop; a window in which at least ``DROP_SHARE`` of the calls
  dropped cuts the limit by 10 % (AIMD's backoff; Gradient2 ignores drops, concurrency-limits#176,
  and a cut on every single drop would walk the limit down to its minimum on a downstream with a
  slow tail). Other failures and cancellations are no sample: an instant error would look like
  a fast downstream.

Each window lasts at least ``WINDOW_S`` and ``MIN_SAMPLES`` calls, then::

    drops >= DROP_SHARE         -> limit * 0.9
    max in flight < limit / 2   -> unchanged (the service, not the downstream, set the pace)
    g = clamp((TOLERANCE * baseline + SLACK_S) / median, 0.5, 1)
    g == 1                      -> limit + sqrt(limit)
    otherwise                   -> limit * g            all clamped to [minimum, maximum]

``SLACK_S`` keeps a fast downstream's limit from following this process's own event-loop lag.
Not thread-safe: one limit serves the tasks of one event loop.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

WINDOW_S = 0.5
MIN_SAMPLES = 10
#: A window this old with fewer samples is dropped: too little traffic to judge.
MAX_WINDOW_S = 10.0
TOLERANCE = 1.25  # Envoy's buffer; Gradient2's rttTolerance is 1.5 and sits further past capacity
SLACK_S = 0.002
BACKOFF = 0.9  # AIMD's backoffRatio
DROP_SHARE = 0.05
BASELINE_HORIZON_S = 60.0
#: A start-up probe this much faster than the window before it is kept, and halved again.
REPROBE_BELOW = 0.8


class AdaptiveLimit:
    """The current limit, updated from (rtt, in flight) samples and drops."""

    def __init__(
        self, minimum: int, maximum: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum ({minimum}) <= maximum ({maximum})")
        self.minimum = minimum
        self.maximum = maximum
        self._clock = clock
        self._estimate = float(maximum)  # starts as the fixed bulkhead it replaces
        self.limit = maximum
        self.changes = 0
        self.drops = 0
        self.last_median: float | None = None
        self.last_change: float | None = None
        self._medians: deque[tuple[float, float]] = deque()  # (closed at, median rtt)
        self._window_start = clock()
        self._probe_at = self._window_start + WINDOW_S  # the second window: see the baseline
        self._probing = False
        self._rtts: list[float] = []  # this window's answers
        self._max_in_flight = 0
        self._dropped = 0

    @property
    def baseline(self) -> float | None:
        """The lowest recent median RTT: the downstream's latency with nothing queued."""
        return min(median for _, median in self._medians) if self._medians else None

    def on_sample(self, rtt: float, in_flight: int) -> int | None:
        """A call answered after ``rtt`` s with ``in_flight`` calls out; the new limit if it
        moved."""
        now = self._clock()
        if not self._probing or now - rtt >= self._window_start:  # a probe: only its own calls
            self._rtts.append(rtt)
        self._max_in_flight = max(self._max_in_flight, in_flight)
        return self._maybe_close(now)

    def on_drop(self, in_flight: int) -> int | None:
        """A call timed out or was answered 429 or 503; the new limit if it moved."""
        self.drops += 1
        self._dropped += 1
        self._max_in_flight = max(self._max_in_flight, in_flight)
        return self._maybe_close(self._clock())

    def snapshot(self) -> dict[str, Any]:
        baseline, now = self.baseline, self._clock()
        return {
            "limit": self.limit,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "baseline_rtt_ms": None if baseline is None else round(baseline * 1000, 3),
            "last_rtt_ms": None if self.last_median is None else round(self.last_median * 1000, 3),
            "probing": self._probing,
            "changes": self.changes,
            "drops": self.drops,
            "seconds_since_change": (
                None if self.last_change is None else round(now - self.last_change, 3)
            ),
        }

    # -- windows ------------------------------------------------------------------------------

    def _open_window(self, now: float) -> None:
        self._window_start = now
        self._rtts = []
        self._max_in_flight = 0
        self._dropped = 0

    def _maybe_close(self, now: float) -> int | None:
        age = now - self._window_start
        if len(self._rtts) + self._dropped < MIN_SAMPLES:
            if age > MAX_WINDOW_S:
                self._open_window(now)
            return None
        if age < WINDOW_S:
            return None
        median = sorted(self._rtts)[len(self._rtts) // 2] if self._rtts else None
        if self._probing:
            estimate = self._end_probe(now, median)
        else:
            estimate = self._next_estimate(now, median)
        self._open_window(now)
        if now >= self._probe_at:
            self._probing = True
            self._estimate = self._clamp(estimate)
            return self._publish(self._estimate / 2, now, keep=True)
        return self._publish(estimate, now)

    def _end_probe(self, now: float, median: float | None) -> float:
        """A half-width window closed. Much faster than the window before it: the downstream was
        queueing, so keep the half width and halve again next window; else resume."""
        before, self._probing, self._probe_at = self.last_median, False, math.inf
        if median is None:
            return self._estimate
        self._remember(now, median)
        if before is not None and median < REPROBE_BELOW * before:
            self._probe_at = now
            return float(self.limit)
        return self._estimate

    def _next_estimate(self, now: float, median: float | None) -> float:
        if median is not None:
            self._remember(now, median)
        if self._dropped and self._dropped >= DROP_SHARE * (self._dropped + len(self._rtts)):
            return self._estimate * BACKOFF
        baseline = self.baseline
        if median is None or baseline is None or self._max_in_flight < self._estimate / 2:
            return self._estimate
        gradient = max(0.5, min(1.0, (TOLERANCE * baseline + SLACK_S) / median))
        if gradient == 1.0:
            return self._estimate + math.sqrt(self._estimate)
        return self._estimate * gradient

    def _remember(self, now: float, median: float) -> None:
        self.last_median = median
        self._medians.append((now, median))
        while self._medians[0][0] < now - BASELINE_HORIZON_S:
            self._medians.popleft()

    def _publish(self, estimate: float, now: float, *, keep: bool = False) -> int | None:
        """Clamp, and publish the whole part when it changed; ``keep`` (a probe) leaves the
        estimate the windows after it resume from."""
        estimate = self._clamp(estimate)
        if not keep:
            self._estimate = estimate
        limit = max(self.minimum, min(self.maximum, int(estimate)))
        if limit == self.limit:
            return None
        self.limit = limit
        self.changes += 1
        self.last_change = now
        return limit

    def _clamp(self, estimate: float) -> float:
        return max(float(self.minimum), min(float(self.maximum), estimate))
