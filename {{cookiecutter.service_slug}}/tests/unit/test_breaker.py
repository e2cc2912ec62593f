"""CircuitBreaker: rate-based opening, timed half-open with permitted calls, manual states."""

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.downstream.breaker import (
    NOT_A_PROBE,
    BreakerOpenError,
    BreakerState,
    CircuitBreaker,
    is_failure_status,
)
from {{ cookiecutter.package_name }}.downstream.config import BreakerSettings

from tests.unit.clocks import FakeClock

FAST = 0.01  # a call duration well under slow_call_duration
SLOW = 5.0  # a call duration well over it


# Small numbers so each test reads on its own; the service's defaults are BreakerSettings().
CONFIG = BreakerSettings(
    window_seconds=10,
    minimum_calls=4,
    failure_rate_threshold=0.5,
    slow_call_duration=1.0,
    open_duration=5.0,
    open_duration_max=20.0,
    half_open_calls=2,
)

Change = tuple[str, BreakerState, BreakerState]


class FakeTimers:
    """``loop.call_later`` for a FakeClock: timers fire when the test advances past them."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> None:
        self.pending.append((self.clock.now + delay, callback))

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        due = [t for t in self.pending if t[0] <= self.clock.now]
        self.pending = [t for t in self.pending if t[0] > self.clock.now]
        for _, callback in sorted(due, key=lambda t: t[0]):
            callback()


def make_breaker(
    clock: FakeClock, *, timers: FakeTimers | None = None, **overrides: Any
) -> tuple[CircuitBreaker, list[Change]]:
    changes: list[Change] = []
    breaker = CircuitBreaker(
        "catalog",
        CONFIG.model_copy(update=overrides),
        clock=clock,
        on_state_change=lambda name, old, new: changes.append((name, old, new)),
        schedule=timers,
    )
    return breaker, changes


def state_of(breaker: CircuitBreaker) -> BreakerState:
    # A call, not `breaker.state`: mypy keeps a property narrowed by one assert across the
    # calls that change it, and would call the next assert unreachable.
    return breaker.state


def call(breaker: CircuitBreaker, *, ok: bool, duration: float = FAST) -> None:
    """One normal call through a breaker that admits it."""
    assert breaker.acquire() == NOT_A_PROBE
    if ok:
        breaker.record_success(duration, probe=NOT_A_PROBE)
    else:
        breaker.record_failure(duration, probe=NOT_A_PROBE)


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(4):
        call(breaker, ok=False)
    assert state_of(breaker) is BreakerState.OPEN


def test_no_verdict_below_minimum_calls() -> None:
    breaker, _ = make_breaker(FakeClock())
    for _ in range(3):
        call(breaker, ok=False)
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.snapshot().failure_rate == 1.0


def test_opens_when_failure_rate_reaches_threshold() -> None:
    breaker, changes = make_breaker(FakeClock())
    call(breaker, ok=True)
    call(breaker, ok=True)
    call(breaker, ok=False)
    assert state_of(breaker) is BreakerState.CLOSED
    call(breaker, ok=False)  # 2 of 4 = 50 %
    assert state_of(breaker) is BreakerState.OPEN
    assert changes == [("catalog", BreakerState.CLOSED, BreakerState.OPEN)]


def test_stays_closed_just_below_threshold() -> None:
    breaker, _ = make_breaker(FakeClock())
    for _ in range(5):
        call(breaker, ok=True)
    for _ in range(4):
        call(breaker, ok=False)  # 4 of 9 = 44 %
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.snapshot().failures == 4


def test_open_rejects_fast_with_time_left() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock)
    trip(breaker)
    clock.advance(2.0)
    with pytest.raises(BreakerOpenError) as caught:
        breaker.acquire()
    assert caught.value.name == "catalog"
    assert caught.value.state is BreakerState.OPEN
    assert caught.value.retry_after == pytest.approx(3.0)
    assert breaker.snapshot().seconds_until_half_open == pytest.approx(3.0)


def test_error_copies_like_pickling_and_reads_well() -> None:
    error = copy.deepcopy(BreakerOpenError("catalog", 1.5, BreakerState.OPEN))
    assert (error.name, error.retry_after, error.state) == ("catalog", 1.5, BreakerState.OPEN)
    assert str(error) == "circuit breaker 'catalog' is open; retry after 1.500s"


def test_calls_settled_while_open_are_ignored() -> None:
    breaker, _ = make_breaker(FakeClock())
    for _ in range(3):
        assert breaker.acquire() == NOT_A_PROBE  # admitted while still closed
    trip(breaker)
    for _ in range(3):
        breaker.record_success(FAST, probe=NOT_A_PROBE)
    assert breaker.snapshot().calls == 4


def test_the_open_period_ending_turns_half_open_with_no_call() -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    breaker, changes = make_breaker(clock, timers=timers)
    trip(breaker)
    timers.advance(4.9)
    assert changes[-1][2] is BreakerState.OPEN
    timers.advance(0.1)  # the timer, not a call or a read, makes the transition
    assert changes[-1] == ("catalog", BreakerState.OPEN, BreakerState.HALF_OPEN)
    assert breaker.snapshot().seconds_until_half_open == 0.0


def test_a_timer_firing_early_waits_for_the_rest_of_the_open_period() -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    breaker, changes = make_breaker(clock, timers=timers)
    trip(breaker)
    [(_, callback)] = timers.pending
    timers.pending.clear()
    clock.advance(5.0 - 0.0004)  # a millisecond-rounding event loop fires it just before
    callback()
    assert changes[-1][2] is BreakerState.OPEN
    timers.advance(0.0004)
    assert changes[-1] == ("catalog", BreakerState.OPEN, BreakerState.HALF_OPEN)


def test_with_a_timer_a_read_changes_nothing_and_a_call_still_turns_half_open() -> None:
    """The timer owns the transition: a read past the open period (from another thread, say,
    where the hook could not start the health probe) leaves it to the timer; a call that comes
    before the timer fires is let through as a probe, as without one."""
    clock = FakeClock()
    timers = FakeTimers(clock)
    breaker, changes = make_breaker(clock, timers=timers)
    trip(breaker)
    clock.advance(5.0)  # the period is over, the timer has not fired yet
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.snapshot().state is BreakerState.OPEN
    assert changes[-1][2] is BreakerState.OPEN
    assert breaker.acquire() != NOT_A_PROBE
    assert changes[-1] == ("catalog", BreakerState.OPEN, BreakerState.HALF_OPEN)


def test_without_a_timer_the_next_read_or_call_turns_half_open() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock)
    trip(breaker)
    clock.advance(5.0)
    assert breaker.snapshot().state is BreakerState.HALF_OPEN


def test_half_open_lets_its_calls_through_at_once_and_refuses_beyond_them() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock)
    trip(breaker)
    clock.advance(5.0)
    permits = [breaker.acquire(), breaker.acquire()]
    assert permits[0] == permits[1] != NOT_A_PROBE
    with pytest.raises(BreakerOpenError) as caught:
        breaker.acquire()
    assert caught.value.state is BreakerState.HALF_OPEN
    assert breaker.snapshot().half_open_calls == 2


def test_permitted_calls_succeeding_close_and_clear_the_window() -> None:
    clock = FakeClock()
    breaker, changes = make_breaker(clock)
    trip(breaker)
    clock.advance(5.0)
    permit = breaker.acquire()
    breaker.record_success(FAST, probe=permit)
    assert state_of(breaker) is BreakerState.HALF_OPEN  # 1 of 2 settled
    breaker.record_success(FAST, probe=breaker.acquire())
    assert state_of(breaker) is BreakerState.CLOSED
    snapshot = breaker.snapshot()
    assert (snapshot.calls, snapshot.failures, snapshot.transitions) == (0, 0, 3)
    assert changes[-1] == ("catalog", BreakerState.HALF_OPEN, BreakerState.CLOSED)


def test_a_failure_rate_over_the_threshold_reopens_doubled_up_to_the_cap() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock)
    trip(breaker)
    expected = [10.0, 20.0, 20.0]  # base 5 s doubles, capped at 20 s
    elapsed = 5.0
    for duration in expected:
        clock.advance(elapsed)
        breaker.record_failure(FAST, probe=breaker.acquire())  # 1 of 2: 50 %, the threshold
        assert state_of(breaker) is BreakerState.OPEN
        snapshot = breaker.snapshot()
        assert snapshot.current_open_duration == duration
        assert snapshot.seconds_until_half_open == pytest.approx(duration)
        clock.advance(duration - 0.5)
        with pytest.raises(BreakerOpenError) as caught:
            breaker.acquire()
        assert caught.value.retry_after == pytest.approx(0.5)
        elapsed = 0.5


def test_a_settled_half_open_call_hands_its_permit_to_the_next_caller() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock, half_open_calls=3)
    trip(breaker)
    clock.advance(5.0)
    permits = [breaker.acquire() for _ in range(3)]
    breaker.record_success(FAST, probe=permits[0])
    breaker.record_success(FAST, probe=breaker.acquire())  # 3 in flight again, then 2
    breaker.record_success(FAST, probe=permits[1])  # the third verdict: closed
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.record_failure(FAST, probe=permits[2])  # settled after the verdict: moot
    assert state_of(breaker) is BreakerState.CLOSED


def test_one_failure_among_ten_half_open_calls_still_closes() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock, half_open_calls=10)
    trip(breaker)
    clock.advance(5.0)
    permits = [breaker.acquire() for _ in range(10)]
    breaker.record_failure(FAST, probe=permits[0])
    for permit in permits[1:]:
        breaker.record_success(FAST, probe=permit)
    assert state_of(breaker) is BreakerState.CLOSED


def test_slow_permitted_calls_reopen() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock)
    trip(breaker)
    clock.advance(5.0)
    permits = [breaker.acquire(), breaker.acquire()]
    for permit in permits:
        breaker.record_success(SLOW, probe=permit)  # every call slow: slow rate 1.0
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.snapshot().current_open_duration == 10.0


def test_close_resets_the_backoff() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock)
    trip(breaker)
    clock.advance(5.0)
    breaker.record_failure(FAST, probe=breaker.acquire())  # open for 10 s
    clock.advance(10.0)
    for permit in [breaker.acquire(), breaker.acquire()]:
        breaker.record_success(FAST, probe=permit)
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.snapshot().current_open_duration == 5.0
    trip(breaker)
    assert breaker.snapshot().seconds_until_half_open == pytest.approx(5.0)


def test_a_cancelled_permitted_call_frees_its_permit_without_a_verdict() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock)
    trip(breaker)
    clock.advance(5.0)
    first, second = breaker.acquire(), breaker.acquire()
    breaker.record_success(FAST, probe=first)
    breaker.record_cancelled(probe=second)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    breaker.record_success(FAST, probe=breaker.acquire())  # the permit came back
    assert state_of(breaker) is BreakerState.CLOSED


def test_a_verdict_from_an_earlier_half_open_period_is_ignored() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock)
    trip(breaker)
    clock.advance(5.0)
    late = breaker.acquire()
    breaker.record_failure(FAST, probe=breaker.acquire())  # reopens for 10 s
    clock.advance(10.0)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    breaker.record_success(FAST, probe=late)  # belongs to the first period: no count
    breaker.record_success(FAST, probe=breaker.acquire())
    assert state_of(breaker) is BreakerState.HALF_OPEN  # 1 of 2 in this period


def test_half_open_max_wait_reopens_when_permitted_calls_hang() -> None:
    clock = FakeClock()
    timers = FakeTimers(clock)
    breaker, _ = make_breaker(clock, timers=timers, half_open_max_wait=2.0)
    trip(breaker)
    timers.advance(5.0)
    breaker.acquire()  # hangs: never settled
    timers.advance(2.0)
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.snapshot().current_open_duration == 10.0


def test_slow_successes_count_as_slow_not_failed() -> None:
    breaker, _ = make_breaker(FakeClock(), slow_call_rate_threshold=0.75)
    call(breaker, ok=True)
    for _ in range(2):
        call(breaker, ok=True, duration=SLOW)
    assert breaker.snapshot().failures == 0
    call(breaker, ok=True, duration=1.0)  # exactly slow_call_duration counts as slow
    assert state_of(breaker) is BreakerState.OPEN
    snapshot = breaker.snapshot()
    assert (snapshot.failures, snapshot.slow_calls, snapshot.slow_call_rate) == (0, 3, 0.75)


def test_slow_failure_counts_as_both() -> None:
    breaker, _ = make_breaker(FakeClock())
    call(breaker, ok=False, duration=SLOW)
    snapshot = breaker.snapshot()
    assert (snapshot.calls, snapshot.failures, snapshot.slow_calls) == (1, 1, 1)


def test_full_slow_rate_threshold_needs_every_call_slow() -> None:
    breaker, _ = make_breaker(FakeClock(), slow_call_rate_threshold=1.0)
    call(breaker, ok=True)
    for _ in range(20):
        call(breaker, ok=True, duration=SLOW)
    assert state_of(breaker) is BreakerState.CLOSED
    breaker.reset()
    for _ in range(4):
        call(breaker, ok=True, duration=SLOW)
    assert state_of(breaker) is BreakerState.OPEN


def test_old_calls_leave_the_window() -> None:
    clock = FakeClock(1000.0)
    breaker, _ = make_breaker(clock)
    for _ in range(3):
        call(breaker, ok=False)  # second 1000
    clock.advance(9.0)  # second 1009: still inside the 10 s window
    assert breaker.snapshot().calls == 3
    clock.advance(1.0)  # second 1010: second 1000 has left
    assert breaker.snapshot().calls == 0
    for _ in range(3):
        call(breaker, ok=False)
    assert state_of(breaker) is BreakerState.CLOSED  # 3 recent failures are below minimum_calls


def test_buckets_expire_one_second_at_a_time() -> None:
    clock = FakeClock(1000.5)
    breaker, _ = make_breaker(clock, minimum_calls=100)
    for second in range(10):  # one call in each of seconds 1000..1009, odd ones failing
        call(breaker, ok=second % 2 == 0)
        clock.advance(1.0)
    assert breaker.snapshot().calls == 9  # now at 1010: second 1000 is gone
    clock.advance(4.0)
    snapshot = breaker.snapshot()
    assert (snapshot.calls, snapshot.failures) == (5, 3)  # seconds 1005..1009 remain
    clock.advance(100.0)
    assert breaker.snapshot().calls == 0


def test_clock_stepping_back_records_in_the_newest_bucket() -> None:
    clock = FakeClock(1000.0)
    breaker, _ = make_breaker(clock)
    clock.advance(5.0)
    call(breaker, ok=True)
    clock.advance(-3.0)
    call(breaker, ok=True)
    assert breaker.snapshot().calls == 2


def test_forced_open_refuses_until_reset() -> None:
    clock = FakeClock()
    breaker, changes = make_breaker(clock)
    breaker.force_open()
    clock.advance(3600.0)
    with pytest.raises(BreakerOpenError) as caught:
        breaker.acquire()
    assert caught.value.state is BreakerState.FORCED_OPEN
    assert caught.value.retry_after == 5.0
    assert breaker.snapshot().seconds_until_half_open == 0.0
    breaker.reset()
    assert breaker.acquire() == NOT_A_PROBE
    assert changes == [
        ("catalog", BreakerState.CLOSED, BreakerState.FORCED_OPEN),
        ("catalog", BreakerState.FORCED_OPEN, BreakerState.CLOSED),
    ]


def test_disabled_admits_everything_and_records_nothing() -> None:
    breaker, _ = make_breaker(FakeClock())
    breaker.disable()
    for _ in range(50):
        call(breaker, ok=False)
    assert state_of(breaker) is BreakerState.DISABLED
    assert breaker.snapshot().calls == 0


def test_metrics_only_records_but_never_opens() -> None:
    breaker, _ = make_breaker(FakeClock())
    breaker.metrics_only()
    for _ in range(50):
        call(breaker, ok=False)
    snapshot = breaker.snapshot()
    assert snapshot.state is BreakerState.METRICS_ONLY
    assert (snapshot.calls, snapshot.failure_rate) == (50, 1.0)


def test_reset_clears_window_backoff_and_half_open() -> None:
    clock = FakeClock()
    breaker, _ = make_breaker(clock)
    trip(breaker)
    clock.advance(5.0)
    breaker.record_failure(FAST, probe=breaker.acquire())  # backoff doubled to 10 s
    clock.advance(10.0)
    permit = breaker.acquire()  # in flight
    breaker.reset()
    breaker.record_failure(FAST, probe=permit)  # the overtaken call's verdict is moot
    snapshot = breaker.snapshot()
    assert snapshot.state is BreakerState.CLOSED
    assert (snapshot.calls, snapshot.current_open_duration) == (0, 5.0)


def test_manual_transition_to_same_state_is_not_a_transition() -> None:
    breaker, changes = make_breaker(FakeClock())
    breaker.reset()
    breaker.disable()
    breaker.disable()
    assert changes == [("catalog", BreakerState.CLOSED, BreakerState.DISABLED)]
    assert breaker.snapshot().transitions == 1


def test_hook_errors_do_not_break_the_breaker() -> None:
    def broken_hook(name: str, old: BreakerState, new: BreakerState) -> None:
        raise RuntimeError("bug in a logging hook")

    clock = FakeClock()
    breaker = CircuitBreaker(
        "catalog",
        BreakerSettings(minimum_calls=1, open_duration=1.0, half_open_calls=1),
        clock=clock,
        on_state_change=broken_hook,
    )
    breaker.acquire()
    breaker.record_failure(FAST, probe=NOT_A_PROBE)
    assert state_of(breaker) is BreakerState.OPEN
    clock.advance(1.0)
    breaker.record_success(FAST, probe=breaker.acquire())
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.snapshot().transitions == 3


@pytest.mark.parametrize(
    ("status_code", "failed"),
    [
        (200, False),
        (204, False),
        (304, False),
        (400, False),
        (404, False),
        (409, False),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_failure_statuses(status_code: int, failed: bool) -> None:
    assert is_failure_status(status_code) is failed


@pytest.mark.parametrize(
    "overrides",
    [
        {"window_seconds": 0},
        {"minimum_calls": 0},
        {"failure_rate_threshold": 0.0},
        {"failure_rate_threshold": 1.5},
        {"slow_call_duration": 0.0},
        {"slow_call_rate_threshold": 0.0},
        {"open_duration": 0.0},
        {"open_duration": 10.0, "open_duration_max": 5.0},
        {"half_open_calls": 0},
        {"half_open_max_wait": -1.0},
        {"probe_path": "healthz"},
        {"probe_path": "//evil.example/healthz"},
        {"probe_path": "/../admin"},
        {"probe_path": "/a/./b"},
        {"probe_path": "/healthz?full=1"},
        {"probe_path": "https://evil.example/"},
    ],
)
def test_config_refuses_nonsense(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BreakerSettings(**overrides)


@pytest.mark.parametrize("path", ["", "/healthz", "/v1/health/", "/.well-known/ready"])
def test_config_takes_plain_probe_paths(path: str) -> None:
    assert BreakerSettings(probe_path=path).probe_path == path


def test_check_refusing_mirrors_acquire() -> None:
    clock = FakeClock()
    config = BreakerSettings(minimum_calls=1, open_duration=5.0, half_open_calls=1)
    breaker = CircuitBreaker("x", config, clock=clock)
    breaker.check_refusing()  # closed: nothing to refuse
    breaker.record_failure(0.01, probe=NOT_A_PROBE)
    assert breaker.state == "open"
    with pytest.raises(BreakerOpenError):
        breaker.check_refusing()
    clock.advance(6.0)
    breaker.check_refusing()  # the open period is over: not refused
    assert breaker.acquire() != NOT_A_PROBE
    with pytest.raises(BreakerOpenError):
        breaker.check_refusing()  # the one permitted call is in flight
