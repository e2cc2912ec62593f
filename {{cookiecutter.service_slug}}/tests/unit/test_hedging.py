"""Hedging's decisions with attempts faked at the unit edge (the real sends are in
tests/integration/test_hedging.py): when a hedge goes out, which answer wins, that the loser is
cancelled, and that the budget, the breaker and the bulkhead stop hedges."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from {{ cookiecutter.package_name }}.downstream.breaker import CircuitBreaker
from {{ cookiecutter.package_name }}.downstream.bulkhead import Bulkhead
from {{ cookiecutter.package_name }}.downstream.config import (
    BreakerSettings,
    BulkheadSettings,
    HedgeSettings,
    ObservabilitySettings,
)
from {{ cookiecutter.package_name }}.downstream.hedging import (
    BUDGET_BURST,
    MIN_SAMPLES,
    HedgeDelay,
    Hedging,
    copy_of,
)
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstream.instruments import Instruments

DELAY = 0.01
FAR = 1e9  # a deadline that never comes
REQUEST = httpx.Request("GET", "http://downstream.test/items/1")
names = (f"hedge-unit-{n}" for n in itertools.count())


def hedging(width: int = 4, ratio: float = 0.5) -> Hedging:
    """Hedging in front of a real breaker and bulkhead; the call's own slot is taken."""
    name = next(names)
    bulkhead = Bulkhead(name, BulkheadSettings(max_concurrency=width))
    assert bulkhead.try_acquire()  # the slot admission gave the call
    hedge = HedgeSettings(enabled=True, delay=DELAY, budget_ratio=ratio)
    breaker = CircuitBreaker(name, BreakerSettings())
    made = Hedging(hedge, breaker, bulkhead, Instruments(name, ObservabilitySettings()))
    made.budget.balance = BUDGET_BURST  # tests that are not about the budget start with tokens
    return made


class Downstream:
    """Attempts in order: each answers ``status`` when its event is set, and records whether it
    was cancelled and which request it was given."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.release = [asyncio.Event() for _ in statuses]
        self.requests: list[httpx.Request] = []
        self.cancelled: list[int] = []

    async def attempt(self, request: httpx.Request) -> httpx.Response:
        n = len(self.requests)
        self.requests.append(request)
        try:
            await self.release[n].wait()
        except asyncio.CancelledError:
            self.cancelled.append(n)
            raise
        if self.statuses[n] == 0:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(self.statuses[n], request=request)


async def until(condition: object) -> None:
    for _ in range(1000):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not met")


@pytest.mark.anyio
async def test_a_fast_first_attempt_is_never_hedged() -> None:
    hedge = hedging()
    downstream = Downstream(200)
    downstream.release[0].set()
    response = await hedge.first_answer(downstream.attempt, REQUEST, FAR)
    assert response.status_code == 200
    assert len(downstream.requests) == 1
    assert hedge.snapshot()["sent"] == 0


@pytest.mark.anyio
async def test_a_slow_first_attempt_is_hedged_the_hedge_wins_and_the_first_is_cancelled() -> None:
    hedge = hedging()
    downstream = Downstream(200, 200)
    call = asyncio.ensure_future(hedge.first_answer(downstream.attempt, REQUEST, FAR))
    await until(lambda: len(downstream.requests) == 2)
    assert hedge.bulkhead.in_flight == 2  # the hedge holds a slot of its own
    downstream.release[1].set()
    response = await call
    assert response.request is downstream.requests[1]
    assert downstream.requests[1] is not REQUEST  # a copy: prepare() writes into a request
    assert downstream.requests[1].url == REQUEST.url
    assert downstream.cancelled == [0]
    assert hedge.bulkhead.in_flight == 1  # the hedge's slot is back
    assert hedge.snapshot()["results"] == {"won": 1}


def test_a_hedge_sends_the_same_method_url_headers_and_body() -> None:
    request = httpx.Request(
        "PUT", "http://downstream.test/items/1", json={"stock": 7}, headers={"x-key": "k"}
    )
    request.extensions["timeout"] = {"read": 1.0}
    copy = copy_of(request)
    assert (copy.method, copy.url, copy.content) == (request.method, request.url, request.content)
    assert copy.headers.multi_items() == request.headers.multi_items()
    copy.headers["x-request-deadline-ms"] = "5"
    copy.extensions["timeout"] = {"read": 0.5}
    assert "x-request-deadline-ms" not in request.headers  # each attempt writes its own
    assert request.extensions["timeout"] == {"read": 1.0}


@pytest.mark.anyio
async def test_a_failed_answer_waits_for_the_other_attempt() -> None:
    hedge = hedging()
    downstream = Downstream(503, 200)
    call = asyncio.ensure_future(hedge.first_answer(downstream.attempt, REQUEST, FAR))
    await until(lambda: len(downstream.requests) == 2)
    downstream.release[0].set()  # the first answers first, with a failure
    await asyncio.sleep(DELAY)
    assert not call.done()
    downstream.release[1].set()
    assert (await call).status_code == 200
    assert hedge.snapshot()["results"] == {"won": 1}


@pytest.mark.anyio
async def test_when_both_fail_the_first_attempts_outcome_is_the_calls() -> None:
    hedge = hedging()
    downstream = Downstream(0, 503)
    call = asyncio.ensure_future(hedge.first_answer(downstream.attempt, REQUEST, FAR))
    await until(lambda: len(downstream.requests) == 2)
    downstream.release[1].set()
    downstream.release[0].set()
    with pytest.raises(httpx.ConnectError):
        await call
    assert hedge.snapshot()["results"] == {"failed": 1}
    assert hedge.bulkhead.in_flight == 1


@pytest.mark.anyio
async def test_a_cancelled_call_cancels_both_attempts_and_gives_the_hedges_slot_back() -> None:
    hedge = hedging()
    downstream = Downstream(200, 200)
    call = asyncio.ensure_future(hedge.first_answer(downstream.attempt, REQUEST, FAR))
    await until(lambda: len(downstream.requests) == 2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert sorted(downstream.cancelled) == [0, 1]
    assert hedge.bulkhead.in_flight == 1


@pytest.mark.anyio
async def test_hedges_are_at_most_the_budgets_share_of_calls() -> None:
    hedge = hedging(ratio=0.1)
    hedge.budget.balance = 0.0
    for _ in range(100):
        downstream = Downstream(200, 200)
        call = asyncio.ensure_future(hedge.first_answer(downstream.attempt, REQUEST, FAR))
        await asyncio.sleep(DELAY * 2)  # every first attempt is slow
        for event in downstream.release:
            event.set()
        await call
    view = hedge.snapshot()
    assert view["sent"] == 10
    assert view["skipped"] == {"budget": 90}


@pytest.mark.anyio
async def test_no_hedge_while_the_breaker_is_not_closed() -> None:
    hedge = hedging()
    hedge.breaker.force_open()
    downstream = Downstream(200, 200)
    call = asyncio.ensure_future(hedge.first_answer(downstream.attempt, REQUEST, FAR))
    await asyncio.sleep(DELAY * 3)
    downstream.release[0].set()
    await call
    assert len(downstream.requests) == 1
    assert hedge.snapshot()["skipped"] == {"breaker": 1}


@pytest.mark.anyio
async def test_no_hedge_when_the_bulkhead_has_no_free_slot() -> None:
    hedge = hedging(width=1)
    downstream = Downstream(200, 200)
    call = asyncio.ensure_future(hedge.first_answer(downstream.attempt, REQUEST, FAR))
    await asyncio.sleep(DELAY * 3)
    downstream.release[0].set()
    await call
    assert len(downstream.requests) == 1
    assert hedge.snapshot()["skipped"] == {"bulkhead": 1}
    assert hedge.bulkhead.in_flight == 1


@pytest.mark.anyio
async def test_no_hedge_with_less_time_left_than_the_delay() -> None:
    hedge = hedging()
    downstream = Downstream(200, 200)
    deadline = asyncio.get_running_loop().time()  # time.monotonic's clock: already passed
    call = asyncio.ensure_future(hedge.first_answer(downstream.attempt, REQUEST, deadline))
    await asyncio.sleep(DELAY * 3)
    downstream.release[0].set()
    await call
    assert hedge.snapshot()["skipped"] == {"deadline": 1}


def test_the_percentile_delay_follows_recent_answers_once_there_are_enough() -> None:
    delay = HedgeDelay(HedgeSettings(enabled=True, delay=0.5, delay_percentile=90))
    for n in range(MIN_SAMPLES - 4):
        delay.observe(n / 1000)
    assert delay.current == 0.5  # too few answers yet: the fixed delay
    for n in range(MIN_SAMPLES - 4, 100):
        delay.observe(n / 1000)
    assert 0.07 <= delay.current <= 0.1


def test_a_fixed_delay_ignores_answers() -> None:
    delay = HedgeDelay(HedgeSettings(enabled=True, delay=0.2))
    for _ in range(100):
        delay.observe(0.001)
    assert delay.current == 0.2
