"""Hedging against the real fault server's ``tail`` mode, on every transport (HTTP/1.1 on aiohttp
and on httpcore, HTTP/2 over TLS): slow first attempts are hedged and the hedges answer, the
downstream receives at most the budget in extra requests, and 1,000 hedged calls, each of which
cancels a loser, leave nothing behind in the pool."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.downstream.client import Downstream
from {{ cookiecutter.package_name }}.downstream.hedging import BUDGET_BURST
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstream.views import describe

from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import one_downstream, running_service
from tests.integration.test_observability import metric

pytestmark = pytest.mark.slow
CALLERS = 8
WIDTH = 16  # room for every caller's hedge: the bulkhead never stops one here
RATIO = 0.5
SETTINGS: dict[str, Any] = {
    "hedge": {"enabled": True, "delay": 0.02, "budget_ratio": RATIO},
    "bulkhead": {"max_concurrency": WIDTH, "max_queue": 100, "max_wait": 10},
    "limits": {"max_connections": WIDTH, "max_keepalive_connections": WIDTH},
    "breaker": {"minimum_calls": 100_000},
    "retry": {"max_attempts": 1},  # every extra request the server counts is a hedge
    "deadline_seconds": 10,
}


async def call_until(catalog: Downstream, calls: int, *, hedges: int = 0) -> int:
    """CALLERS callers share ``calls`` calls (or go on until ``hedges`` were sent, at most
    4 x ``calls``); every answer must be a 200. Returns the calls made."""
    made = 0
    hedging = catalog.hedging
    assert hedging is not None

    def more() -> bool:
        if made >= 4 * calls:
            return False
        return made < calls or sum(hedging.sent.values()) < hedges

    async def caller() -> None:
        nonlocal made
        while more():
            made += 1
            response = await catalog.get(f"/items/{made}")
            assert response.status_code == 200

    async with asyncio.TaskGroup() as group:
        for _ in range(CALLERS):
            group.create_task(caller())
    return made


@pytest.mark.anyio
async def test_slow_answers_are_hedged_within_the_budget(
    any_transport: tuple[RunningFaultServer, Any],
) -> None:
    """Retries are on, and counted apart: over HTTP/2 a connection the server drops under the
    cancelled losers' streams (seen once in CI: ReadError on every stream of it) fails the
    calls on it, and the layer retries them, as in production."""
    fault, transport = any_transport
    fault.set_fault("items", "tail", latency_ms=2, tail_rate=0.2, tail_latency_ms=1000)
    settings = {**SETTINGS, "retry": {}}
    async with one_downstream(fault.base_url, **settings, **transport) as catalog:
        calls = await call_until(catalog, 200)
        debug_view = describe(catalog)
        assert catalog.bulkhead.in_flight == 0
    view = debug_view["hedging"]
    retries = sum(debug_view["retry_budget"]["retries_by_reason"].values())
    received = fault.stats()["items"]
    assert view["results"].get("won", 0) > 0, view  # hedges answered before slow first attempts
    assert 0 < view["sent"] <= RATIO * calls + BUDGET_BURST, view
    assert calls <= received <= calls + view["sent"] + retries, (received, view, retries)


@pytest.mark.anyio
async def test_a_downstream_slow_as_a_whole_gets_at_most_the_budget_in_hedges(
    fault: RunningFaultServer,
) -> None:
    """Every answer slow: hedging can only add load here, so it stops at the budget (5 %)."""
    fault.set_fault("items", "tail", tail_rate=1.0, tail_latency_ms=100)
    ratio = 0.05
    settings = {**SETTINGS, "hedge": {"enabled": True, "delay": 0.02, "budget_ratio": ratio}}
    async with one_downstream(fault.base_url, **settings) as catalog:
        calls = await call_until(catalog, 200)
        view = describe(catalog)["hedging"]
    received = fault.stats()["items"]
    assert view["sent"] <= ratio * calls + BUDGET_BURST, view
    assert view["skipped"]["budget"] >= calls - view["sent"] - BUDGET_BURST, view
    assert received <= calls * (1 + ratio) + BUDGET_BURST, (received, view)


@pytest.mark.anyio
async def test_a_thousand_hedged_calls_leave_no_connection_behind(
    any_transport: tuple[RunningFaultServer, Any],
) -> None:
    """Every hedged call cancels its loser: waiting for its head, reading its body, or still
    connecting (few connections are kept alive, so new ones open all the time: httpcore #1093's
    window). Afterwards the pool holds no request and no busy connection, and answers. Retries
    are on: over HTTP/2 hypercorn ends a connection after 1,000 requests with a GOAWAY, and the
    streams it did not process are retried, as in production."""
    fault, transport = any_transport
    fault.set_fault("items", "tail", latency_ms=1, tail_rate=0.5, tail_latency_ms=60)
    limits = {"max_connections": WIDTH, "max_keepalive_connections": 2}
    settings = {**SETTINGS, "limits": limits, "retry": {}}
    async with one_downstream(fault.base_url, **settings, **transport) as catalog:
        await call_until(catalog, 1000, hedges=1000)
        hedging = catalog.hedging
        assert hedging is not None
        sent = sum(hedging.sent.values())
        while catalog.repair.pending:  # repairs close sockets in the background
            await asyncio.gather(*catalog.repair.pending)
        stats = catalog.pool_stats()
        assert sent >= 1000, hedging.snapshot()
        assert (stats.requests_active, stats.requests_queued, stats.active) == (0, 0, 0), stats
        assert catalog.bulkhead.in_flight == 0
        fault.set_fault("items", "healthy")
        replies = await asyncio.gather(*(catalog.get(f"/items/{i}") for i in range(WIDTH)))
        assert [reply.status_code for reply in replies] == [200] * WIDTH


def test_the_service_turns_hedging_on_from_its_settings_and_counts_the_hedges(
    fault: RunningFaultServer,
) -> None:
    fault.set_fault("items", "tail", latency_ms=1, tail_rate=0.3, tail_latency_ms=300)
    hedge = {"enabled": True, "delay": 0.02, "budget_ratio": RATIO}
    with running_service(fault, hedge=hedge) as (url, _), httpx.Client(base_url=url) as client:
        for i in range(40):
            assert client.get(f"/items/{i}").status_code == 200
        view = client.get("/debug/downstreams").json()["catalog"]["hedging"]
        metrics = client.get("/metrics").text
    assert view["calls"] == 40
    assert view["sent"] > 0, view
    counted = sum(
        metric(metrics, "downstream_hedges_total", downstream="catalog", result=result)
        for result in ("won", "lost", "failed")
    )
    assert counted >= view["sent"]  # the counters are the process's: other tests' hedges too
