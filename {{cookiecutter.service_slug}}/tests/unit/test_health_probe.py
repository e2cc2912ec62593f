"""HealthProbe's rounds against a real breaker, with the probe call faked at the unit edge: which
503s end a round, and that every half-open period gets probed. The real probe, through the
pipeline to a fault server, is in tests/integration/test_downstream.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from {{ cookiecutter.package_name }}.downstream.breaker import (
    BreakerOpenError,
    BreakerState,
    CircuitBreaker,
)
from {{ cookiecutter.package_name }}.downstream.bulkhead import BulkheadFullError
from {{ cookiecutter.package_name }}.downstream.config import BreakerSettings
from {{ cookiecutter.package_name }}.downstream.errors import DownstreamError
from {{ cookiecutter.package_name }}.downstream.failures import (
    breaker_refused,
    budget_spent,
    for_exception,
    shed,
)
from {{ cookiecutter.package_name }}.downstream.health_probe import HealthProbe
from {{ cookiecutter.package_name }}.downstream.httplib import httpx

from tests.unit.clocks import FakeClock

NAME = "catalog"
HALF_OPEN_CALLS = 3
CONFIG = BreakerSettings(
    minimum_calls=2, open_duration=1.0, open_duration_max=1.0, half_open_calls=HALF_OPEN_CALLS
)


def half_open_breaker(clock: FakeClock, on_change: Callable[[], None]) -> CircuitBreaker:
    """Opened by two failed calls, half-open once its open period is over."""

    def changed(name: str, old: BreakerState, new: BreakerState) -> None:
        if new is BreakerState.HALF_OPEN:
            on_change()

    breaker = CircuitBreaker(NAME, CONFIG, clock=clock, on_state_change=changed)
    for _ in range(2):
        breaker.record_failure(0.01, probe=breaker.acquire())
    assert state(breaker) is BreakerState.OPEN
    clock.now += CONFIG.open_duration
    return breaker


def state(breaker: CircuitBreaker) -> BreakerState:
    """Read anew each time (the read itself may turn OPEN to HALF_OPEN)."""
    return breaker.state


async def until_done(probe: HealthProbe) -> None:
    for _ in range(100):
        await asyncio.sleep(0)
    await probe.aclose()


@pytest.mark.anyio
async def test_a_probe_sent_and_refused_a_retry_counts_and_the_round_goes_on() -> None:
    """503 retry_budget: the probe reached the downstream and failed. Ending the round there
    left the breaker half-open with nobody to probe it (CI, 12-06)."""
    clock = FakeClock()
    sent: list[str] = []
    probe: HealthProbe

    async def call() -> None:
        permit = breaker.acquire()
        if not sent:
            sent.append("failed")
            breaker.record_failure(0.01, probe=permit)
            raise budget_spent(NAME)
        sent.append("ok")
        breaker.record_success(0.01, probe=permit)

    breaker = half_open_breaker(clock, lambda: probe.start())
    probe = HealthProbe(breaker, call, most=HALF_OPEN_CALLS)
    assert state(breaker) is BreakerState.HALF_OPEN  # the hook started the probe
    await until_done(probe)
    assert sent == ["failed", "ok", "ok"]
    assert state(breaker) is BreakerState.CLOSED  # 1 failure in 3 is under the threshold


@pytest.mark.parametrize(
    "refusal",
    [
        breaker_refused(NAME, BreakerOpenError(NAME, 1.0, BreakerState.HALF_OPEN)),
        shed(NAME, BulkheadFullError(NAME, "queue_full", 1.0)),
        for_exception(NAME, httpx.PoolTimeout("no connection came free")),
    ],
    ids=lambda refusal: refusal.reason,
)
@pytest.mark.anyio
async def test_a_probe_that_never_reached_the_downstream_ends_the_round(
    refusal: DownstreamError,
) -> None:
    """Callers hold the permits, the bulkhead or the pool: their verdicts decide."""
    clock = FakeClock()
    calls = 0
    probe: HealthProbe

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise refusal

    breaker = half_open_breaker(clock, lambda: probe.start())
    probe = HealthProbe(breaker, call, most=HALF_OPEN_CALLS)
    assert state(breaker) is BreakerState.HALF_OPEN
    await until_done(probe)
    assert calls == 1
    assert state(breaker) is BreakerState.HALF_OPEN


@pytest.mark.anyio
async def test_a_period_that_begins_while_a_probe_is_out_gets_a_round_of_its_own() -> None:
    """Callers reopen the breaker while the first period's probe hangs; when it returns, the
    next period is probed until the breaker decides, not left half-open."""
    clock = FakeClock()
    released = asyncio.Event()
    probes: list[int] = []
    probe: HealthProbe

    async def call() -> None:
        permit = breaker.acquire()
        probes.append(permit)
        if len(probes) == 1:
            await released.wait()  # the first period ends meanwhile
        breaker.record_success(0.01, probe=permit)  # moot for an earlier period

    breaker = half_open_breaker(clock, lambda: probe.start())
    probe = HealthProbe(breaker, call, most=HALF_OPEN_CALLS)
    assert state(breaker) is BreakerState.HALF_OPEN
    for _ in range(10):
        await asyncio.sleep(0)
    assert probes == [1]
    for _ in range(2):  # two callers fail: 2 of 3 reopens
        breaker.record_failure(0.01, probe=breaker.acquire())
    assert state(breaker) is BreakerState.OPEN
    clock.now += CONFIG.open_duration
    assert state(breaker) is BreakerState.HALF_OPEN  # period 2; its hook found the probe busy
    released.set()
    await until_done(probe)
    assert probes[0] == 1
    assert set(probes[1:]) == {2}
    assert state(breaker) is BreakerState.CLOSED
