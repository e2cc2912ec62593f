"""The adaptive limit against a modelled downstream, on a fake clock: where it settles, how fast,
and what it ignores. (The real-server proof is tests/integration/test_adaptive_limit.py.)"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import pytest

from {{ cookiecutter.package_name }}.downstream.concurrency_limit import (
    MIN_SAMPLES,
    WINDOW_S,
    AdaptiveLimit,
)

from tests.unit.clocks import FakeClock

BASE_RTT = 0.02


def congested_rtt(in_flight: int, capacity: int) -> float:
    """Past its capacity every call slows every other: throughput falls as concurrency rises
    (the fault server's ``degrade`` mode is the same curve)."""
    return BASE_RTT * max(1.0, (in_flight / capacity) ** 2)


def drive(
    limit: AdaptiveLimit,
    clock: FakeClock,
    capacity: Callable[[float], int],
    until: float,
    *,
    callers: int = 64,
    slowdown: Callable[[float], float] = lambda t: 1.0,
) -> list[tuple[float, int]]:
    """A closed loop of ``callers`` behind the limit until ``until``; the (time, limit) trace."""
    in_flight: list[tuple[float, float]] = []  # (completion time, rtt)
    trace = []
    while clock.now < until:
        while len(in_flight) < min(callers, limit.limit):
            rtt = congested_rtt(len(in_flight) + 1, capacity(clock.now)) * slowdown(clock.now)
            heapq.heappush(in_flight, (clock.now + rtt, rtt))
        clock.now, rtt = heapq.heappop(in_flight)
        limit.on_sample(rtt, len(in_flight) + 1)
        trace.append((clock.now, limit.limit))
    return trace


def limit_at(trace: list[tuple[float, int]], when: float) -> int:
    return next(value for at, value in trace if at >= when)


def new_limit(minimum: int = 1, maximum: int = 64) -> tuple[AdaptiveLimit, FakeClock]:
    clock = FakeClock(start=0.0)
    return AdaptiveLimit(minimum, maximum, clock=clock), clock


def test_the_limit_falls_near_capacity_when_the_downstream_degrades() -> None:
    """After minutes at its capacity (no window of them showed the unloaded RTT: the probes
    did), the downstream's capacity falls to a quarter."""
    limit, clock = new_limit()
    trace = drive(limit, clock, lambda t: 32 if t < 100 else 8, until=110)
    assert limit_at(trace, 99.9) >= 32  # healthy: the width the downstream can use
    settled = sorted(value for at, value in trace if at >= 103)
    assert 8 <= settled[len(settled) // 2] <= 16, settled  # the median sample
    assert settled[0] >= 8 // 2
    assert settled[-1] <= 2 * 8


def test_the_limit_grows_back_when_capacity_returns() -> None:
    limit, clock = new_limit()
    trace = drive(limit, clock, lambda t: 8 if t < 10 else 32, until=20)
    assert limit_at(trace, 9.9) <= 16
    assert limit_at(trace, 15) >= 24


def test_started_far_too_wide_it_is_near_capacity_within_seconds_and_stays() -> None:
    """The first windows run at full width, so their RTT is no baseline; each cut measures a
    lower one. Minutes of the same overload later, the baseline has not drifted up (Gradient2's
    long average does) and neither has the limit."""
    limit, clock = new_limit()
    trace = drive(limit, clock, lambda t: 8, until=300)
    assert max(value for at, value in trace if at >= 6) <= 16
    assert max(value for at, value in trace if at >= 240) <= 16
    assert limit.baseline is not None
    assert limit.baseline < 1.5 * BASE_RTT


def test_a_downstream_slower_for_good_gets_its_width_back_within_the_baseline_horizon() -> None:
    """A deploy doubles every call's latency at t=10 s: at first that reads as queueing and the
    limit narrows; once the old minimum has aged out the new latency is the baseline."""
    limit, clock = new_limit()
    trace = drive(limit, clock, lambda t: 32, until=100, slowdown=lambda t: 1 if t < 10 else 2)
    assert limit_at(trace, 20) <= 24
    assert min(value for at, value in trace if at >= 90) >= 24
    assert limit.baseline is not None
    assert limit.baseline >= 1.8 * BASE_RTT


def feed_window(
    limit: AdaptiveLimit,
    clock: FakeClock,
    rtt: float,
    in_flight: int,
    *,
    calls: int = 20,
    drops: int = 0,
) -> None:
    """One window's worth of ``calls`` answers, ``drops`` of them timed out; the last one closes
    the window."""
    assert calls >= MIN_SAMPLES
    for n in range(calls):
        clock.now += 1.01 * WINDOW_S / calls
        if n < drops:
            limit.on_drop(in_flight)
        else:
            limit.on_sample(rtt, in_flight)


def settle_baseline(limit: AdaptiveLimit, clock: FakeClock) -> None:
    """Windows at the base RTT."""
    for _ in range(2):
        feed_window(limit, clock, BASE_RTT, in_flight=limit.limit)
    assert limit.baseline == pytest.approx(BASE_RTT)


def test_at_start_up_it_halves_while_each_half_is_much_faster() -> None:
    """A service loaded from its first call: 16 wide on a downstream that serves 4. Each
    half-width window that answers much faster than the one before is kept and halved again;
    the first that does not (2 is no faster than 4) ends the search at the width before it."""
    limit, clock = new_limit(maximum=16)
    feed_window(limit, clock, 0.4, in_flight=16)
    assert limit.limit == 8
    for _ in range(50):  # the full-width calls still out end first; a probe judges its own
        limit.on_sample(0.6, in_flight=16)
    for rtt, width_after in ((0.2, 4), (0.05, 2), (0.05, 4)):
        feed_window(limit, clock, rtt, in_flight=limit.limit, calls=40)
        assert limit.limit == width_after, rtt
    assert limit.baseline == pytest.approx(0.05)


def test_slower_answers_narrow_the_limit_only_when_the_limit_is_in_use() -> None:
    limit, clock = new_limit()
    settle_baseline(limit, clock)
    before = limit.limit
    feed_window(limit, clock, 4 * BASE_RTT, in_flight=before // 4)  # the service is quiet
    assert limit.limit == before
    feed_window(limit, clock, 4 * BASE_RTT, in_flight=before)
    assert before // 2 <= limit.limit < before  # cut, by at most half a window


def test_a_window_with_drops_cuts_a_tenth_and_a_stray_drop_does_not() -> None:
    limit, clock = new_limit()
    settle_baseline(limit, clock)
    assert limit.limit == 64
    feed_window(limit, clock, BASE_RTT, in_flight=64, drops=2)  # 10 % timed out
    assert limit.limit == int(64 * 0.9)
    feed_window(limit, clock, BASE_RTT, in_flight=64, calls=100, drops=1)  # a slow tail's 1 %
    assert limit.limit > int(64 * 0.9)  # not cut: a healthy window adds headroom instead


def test_the_limit_never_leaves_its_bounds() -> None:
    limit, clock = new_limit(minimum=4, maximum=16)
    for _ in range(40):
        feed_window(limit, clock, BASE_RTT, in_flight=16, drops=20)
    assert limit.limit == 4
    for _ in range(40):
        feed_window(limit, clock, BASE_RTT, in_flight=16)
    assert limit.limit == 16


def test_a_quiet_downstream_keeps_its_limit() -> None:
    """Fewer than MIN_SAMPLES calls in a window say nothing; the window is dropped."""
    limit, clock = new_limit()
    for _ in range(100):  # five calls in the longest window, MAX_WINDOW_S
        clock.now += 2.0
        limit.on_sample(10 * BASE_RTT, in_flight=64)
    assert limit.limit == 64
    assert limit.changes == 0


def test_minimum_above_maximum_is_refused() -> None:
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimit(8, 4)
