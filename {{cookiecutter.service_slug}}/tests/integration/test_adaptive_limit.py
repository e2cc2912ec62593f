"""The adaptive limit against the real fault server's ``degrade`` mode, on every transport: the
bulkhead narrows to near the downstream's capacity, and widens again when capacity returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.downstream.client import Downstream

from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import one_downstream

WIDTH = 32
CAPACITY = 4
CALLERS = WIDTH
# Every caller queues rather than being shed, the breaker stays out of the way, and the
# per-attempt timeouts are far above the slowest degraded answer (0.02 s * (32 / 4)**2). Retries
# stay on: over HTTP/2 hypercorn sends GOAWAY after 1,000 requests on a connection, and the
# streams it did not process are retried, as in production.
SETTINGS: dict[str, Any] = {
    "bulkhead": {"adaptive": True, "max_concurrency": WIDTH, "max_queue": CALLERS, "max_wait": 30},
    "limits": {"max_connections": WIDTH, "max_keepalive_connections": WIDTH},
    "timeouts": {"connect": 5, "read": 10, "write": 5, "pool": 5},
    "deadline_seconds": 30,
    "breaker": {"minimum_calls": 100_000},
}


async def load(catalog: Downstream, seconds: float) -> int:
    """CALLERS closed-loop callers for ``seconds``; the calls answered."""
    answered = 0
    stop = time.monotonic() + seconds

    async def caller(n: int) -> None:
        nonlocal answered
        while time.monotonic() < stop:
            await catalog.get(f"/items/{n}")
            answered += 1

    async with asyncio.TaskGroup() as group:
        for n in range(CALLERS):
            group.create_task(caller(n))
    return answered


@pytest.mark.anyio
async def test_the_bulkhead_follows_the_downstreams_capacity_down_and_back_up(
    any_transport: tuple[RunningFaultServer, Any],
) -> None:
    fault, transport = any_transport
    fault.set_fault("items", "degrade", capacity=CAPACITY, latency_ms=20)
    async with one_downstream(fault.base_url, **SETTINGS, **transport) as catalog:
        assert await load(catalog, 4.0) > 0
        narrowed = catalog.describe()["bulkhead"]
        fault.set_fault("items", "degrade", capacity=WIDTH, latency_ms=20)  # capacity is back
        await load(catalog, 4.0)
        widened = catalog.describe()["bulkhead"]
        assert catalog.bulkhead.in_flight == 0
    assert narrowed["limit"] == narrowed["adaptive"]["limit"]
    assert narrowed["limit"] <= 3 * CAPACITY, narrowed
    # Up by more than half the old capacity in a few seconds. How far depends on this machine:
    # the fault server shares the test's process and cores, so its real capacity is the CPU's.
    assert widened["limit"] >= max(2 * CAPACITY, narrowed["limit"] + 2), (narrowed, widened)
    assert narrowed["shed"] == widened["shed"] == 0  # the narrowing queued callers, shed none
