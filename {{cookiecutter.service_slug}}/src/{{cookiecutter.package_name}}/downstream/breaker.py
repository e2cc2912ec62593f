"""Circuit breaker that trips on failure and slow-call *rates* over a time window.

Why it exists: a downstream failing 40 % of its calls needs shedding as much as one
failing ten calls in a row, and a count of consecutive failures sees only the second.
No maintained asyncio breaker counts rates: pybreaker has no asyncio support and takes
thread locks, aiobreaker was abandoned in 2021, purgatory and circuitbreaker count
consecutive failures only. This one follows Resilience4j: failure and slow-call rate
thresholds over a minimum number of calls, manual states, an automatic open -> half-open
transition when the open period ends (with or without traffic), a number of half-open calls
in flight at once whose first ``half_open_calls`` verdicts close or reopen it, and an
optional maximum wait in half-open. Differences from Resilience4j and Polly are in the README.

Its tuning is ``config.BreakerSettings``, the one place its defaults and bounds are written.

No method awaits or locks: each runs to completion within one event-loop step, so one
breaker is safe for every task on a loop, but it is not thread-safe. Timed transitions use
the ``schedule`` callable it is given (``loop.call_later``), and then reading ``state`` or a
``snapshot`` changes nothing: a read from another thread (a test, a debugger) cannot make the
open -> half-open transition, whose hook starts the health probe on the loop. Without a
``schedule`` they happen on the next call or read.
"""

import contextlib
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from .config import BreakerSettings
from .window import SlidingWindow


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"


# Module aliases for the hot path: on Python 3.11 looking up `BreakerState.CLOSED` costs
# ~130 ns (the enum metaclass), a module global ~10 ns.
_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_METRICS_ONLY = BreakerState.METRICS_ONLY

StateChangeHook = Callable[[str, BreakerState, BreakerState], None]
Schedule = Callable[[float, Callable[[], None]], object]

#: What ``acquire`` returns for a call admitted while closed: no half-open permit.
NOT_A_PROBE = 0


class BreakerOpenError(Exception):
    """The breaker refused the call before any I/O was done.

    ``retry_after`` is the number of seconds until a call may be let through: the rest
    of the open period in OPEN; in HALF_OPEN with every permit taken, about how long the
    permitted calls take to decide; ``open_duration`` in FORCED_OPEN, which only a manual
    reset ends.
    """

    def __init__(self, name: str, retry_after: float, state: BreakerState) -> None:
        # The message is built in __str__: rejections are frequent while a breaker is
        # open, and most are counted, not printed.
        super().__init__(name, retry_after, state)
        self.name = name
        self.retry_after = retry_after
        self.state = state

    def __str__(self) -> str:
        return f"circuit breaker {self.name!r} is {self.state}; retry after {self.retry_after:.3f}s"


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """Point-in-time view for metrics and health endpoints."""

    state: BreakerState
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    seconds_until_half_open: float
    """Rest of the open period; 0.0 in every state but OPEN."""
    half_open_calls: int
    """Half-open calls in flight now; 0 in every other state."""
    transitions: int
    current_open_duration: float
    """Length of the current (or next) open period, after backoff."""


class CircuitBreaker:
    """Failure-rate circuit breaker for one downstream.

    Every admitted call must be settled exactly once with the permit acquire() returned::

        permit = breaker.acquire()  # raises BreakerOpenError when cut off
        started = clock()
        try:
            response = await send()
        except asyncio.CancelledError:
            breaker.record_cancelled(probe=permit)
            raise
        except Exception:
            breaker.record_failure(clock() - started, probe=permit)
            raise
        if is_failure_status(response.status_code):
            breaker.record_failure(clock() - started, probe=permit)
        else:
            breaker.record_success(clock() - started, probe=permit)

    A permit is ``NOT_A_PROBE`` for calls admitted while closed, else the number of the
    half-open period it belongs to: a late verdict from an earlier period is ignored.
    """

    __slots__ = (
        "_clock",
        "_config",
        "_half_open_done",
        "_half_open_failures",
        "_half_open_in_flight",
        "_half_open_slow",
        "_next_probe_at",
        "_on_state_change",
        "_open_duration",
        "_period",
        "_schedule",
        "_state",
        "_transitions",
        "_window",
        "name",
    )

    def __init__(
        self,
        name: str,
        config: BreakerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateChangeHook | None = None,
        schedule: Schedule | None = None,
    ) -> None:
        self.name = name
        self._config = config
        self._clock = clock
        self._on_state_change = on_state_change
        self._schedule = schedule
        self._state = _CLOSED
        self._transitions = 0
        self._open_duration = config.open_duration
        self._next_probe_at = 0.0  # end of the open period
        self._period = 0  # numbers half-open periods; a permit carries its period's number
        self._half_open_in_flight = 0
        self._half_open_done = 0
        self._half_open_failures = 0
        self._half_open_slow = 0
        self._window = SlidingWindow(config.window_seconds, int(clock()))

    @property
    def state(self) -> BreakerState:
        self._half_open_if_due()
        return self._state

    def check_refusing(self) -> None:
        """Raise BreakerOpenError if ``acquire`` would refuse now, changing nothing else.

        Lets a caller refuse before it queues for anything else (a bulkhead slot held by
        calls to the very downstream that opened it).
        """
        state = self._state
        if state is _CLOSED:
            return
        self._refuse_if_cut_off(state, self._clock())

    def acquire(self) -> int:
        """Admit one call and return its permit (see the class docstring).

        Raises BreakerOpenError when OPEN, FORCED_OPEN, or HALF_OPEN with ``half_open_calls``
        calls in flight. When the open period has ended, OPEN turns HALF_OPEN here if no
        timer did it first.
        """
        state = self._state
        if state is _CLOSED:
            return NOT_A_PROBE
        now = self._clock()
        self._refuse_if_cut_off(state, now)
        if self._state is _HALF_OPEN:
            self._half_open_in_flight += 1
            return self._period
        return NOT_A_PROBE  # DISABLED or METRICS_ONLY

    def record_success(self, duration: float, *, probe: int) -> None:
        """Settle a call that got a usable answer; a slow one counts as slow."""
        slow = duration >= self._config.slow_call_duration
        if probe:
            self._settle_half_open(probe, failed=False, slow=slow)
        else:
            self._record(failed=False, slow=slow)

    def record_failure(self, duration: float, *, probe: int) -> None:
        """Settle a call that failed (error, timeout, or is_failure_status)."""
        slow = duration >= self._config.slow_call_duration
        if probe:
            self._settle_half_open(probe, failed=True, slow=slow)
        else:
            self._record(failed=True, slow=slow)

    def record_cancelled(self, *, probe: int) -> None:
        """Settle a cancelled call: no verdict, but its half-open permit is free again."""
        if probe and probe == self._period and self._state is _HALF_OPEN:
            self._half_open_in_flight -= 1

    def force_open(self) -> None:
        """Refuse every call until reset(), e.g. during a downstream's maintenance."""
        self._set_state(_FORCED_OPEN)

    def disable(self) -> None:
        """Admit every call and record nothing, until reset()."""
        self._set_state(BreakerState.DISABLED)

    def metrics_only(self) -> None:
        """Record and compute rates but never open: to try thresholds on live load."""
        self._set_state(_METRICS_ONLY)

    def reset(self) -> None:
        """Back to CLOSED with an empty window and the base open duration."""
        self._close()

    def snapshot(self) -> BreakerSnapshot:
        self._half_open_if_due()
        now = self._clock()
        window = self._window
        window.expire(int(now))
        calls = window.calls
        state = self._state
        until_half_open = max(0.0, self._next_probe_at - now) if state is _OPEN else 0.0
        return BreakerSnapshot(
            state=state,
            calls=calls,
            failures=window.failures,
            slow_calls=window.slow,
            failure_rate=window.failures / calls if calls else 0.0,
            slow_call_rate=window.slow / calls if calls else 0.0,
            seconds_until_half_open=until_half_open,
            half_open_calls=self._half_open_in_flight if state is _HALF_OPEN else 0,
            transitions=self._transitions,
            current_open_duration=self._open_duration,
        )

    def _refuse_if_cut_off(self, state: BreakerState, now: float) -> None:
        if state is _FORCED_OPEN:
            raise BreakerOpenError(self.name, self._config.open_duration, state)
        if state is _OPEN:
            retry_after = self._next_probe_at - now
            if retry_after > 0.0:
                raise BreakerOpenError(self.name, retry_after, state)
            self._half_open()
        elif state is _HALF_OPEN and self._half_open_in_flight >= self._config.half_open_calls:
            # As many calls in flight as half-open permits at once: one settles within a deadline.
            raise BreakerOpenError(self.name, 1.0, state)

    def _record(self, *, failed: bool, slow: bool) -> None:
        state = self._state
        if state is not _CLOSED and state is not _METRICS_ONLY:
            # DISABLED, or a call admitted before the breaker opened: the verdict is
            # already made, and the window is cleared when the breaker closes.
            return
        window = self._window
        window.record(int(self._clock()), failed=failed, slow=slow)
        calls = window.calls
        config = self._config
        if (
            state is _CLOSED
            and calls >= config.minimum_calls
            and (
                window.failures / calls >= config.failure_rate_threshold
                or window.slow / calls >= config.slow_call_rate_threshold
            )
        ):
            self._open()

    def _settle_half_open(self, probe: int, *, failed: bool, slow: bool) -> None:
        """Count a permitted call; once ``half_open_calls`` have settled, their rates close or
        reopen the breaker (a settled call's permit goes to the next caller meanwhile)."""
        if probe != self._period or self._state is not _HALF_OPEN:
            return  # a manual transition or an earlier period's call: its verdict is moot
        self._half_open_in_flight -= 1
        self._half_open_done += 1
        self._half_open_failures += failed
        self._half_open_slow += slow
        done = self._half_open_done
        config = self._config
        if (
            self._half_open_failures / config.half_open_calls >= config.failure_rate_threshold
            or self._half_open_slow / config.half_open_calls >= config.slow_call_rate_threshold
        ):
            self._reopen()  # the rest cannot bring the rates back under the thresholds
        elif done >= config.half_open_calls:
            self._close()

    def _reopen(self) -> None:
        self._open_duration = min(self._open_duration * 2.0, self._config.open_duration_max)
        self._open()

    def _open(self) -> None:
        self._next_probe_at = self._clock() + self._open_duration
        self._set_state(_OPEN)
        if self._schedule is not None:
            self._schedule(self._open_duration, self._open_timer)

    def _open_timer(self) -> None:
        """The open period's timer; one firing a hair early (libuv rounds to milliseconds)
        waits for the rest."""
        if self._state is not _OPEN:
            return
        remaining = self._next_probe_at - self._clock()
        if remaining > 0.0 and self._schedule is not None:
            self._schedule(remaining, self._open_timer)
        else:
            self._half_open()

    def _half_open_if_due(self) -> None:
        """A read's transition, only when no timer owns it (see the module docstring)."""
        if self._schedule is None and self._state is _OPEN and self._clock() >= self._next_probe_at:
            self._half_open()

    def _half_open(self) -> None:
        self._period += 1
        self._half_open_in_flight = self._half_open_done = 0
        self._half_open_failures = self._half_open_slow = 0
        self._set_state(_HALF_OPEN)
        max_wait = self._config.half_open_max_wait
        if max_wait and self._schedule is not None:
            period = self._period
            self._schedule(max_wait, lambda: self._half_open_expired(period))

    def _half_open_expired(self, period: int) -> None:
        """Still half-open after ``half_open_max_wait``: its calls hang, so reopen."""
        if self._state is _HALF_OPEN and self._period == period:
            self._reopen()

    def _close(self) -> None:
        self._window.clear(int(self._clock()))
        self._open_duration = self._config.open_duration
        self._set_state(_CLOSED)

    def _set_state(self, new: BreakerState) -> None:
        old = self._state
        if new is old:
            return
        self._state = new
        self._transitions += 1
        hook = self._on_state_change
        if hook is not None:
            # The hook is user code, typically logging or metrics. A bug in it must not
            # fail the call that caused the transition nor leave the breaker
            # half-changed, so its exceptions are swallowed.
            with contextlib.suppress(Exception):
                hook(self.name, old, new)


def is_failure_status(status_code: int) -> bool:
    """5xx and 429 count against the downstream; any other status is an answer."""
    return status_code >= 500 or status_code == 429
