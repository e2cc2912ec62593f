"""The adaptive limit against the real fault server's ``degrade`` mode, on every transport: the
bulkhead narrows to near the downstream's capacity, and widens again when capacity returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.downstream.client import Downstream
from {{ cookiecutter.package_name }}.downstream.views import describe

from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import one_downstream

WIDTH = 16
CAPACITY = 4
CALLERS = WIDTH
# Slow enough that this process's own CPU (the fault server shares it, and CI machines are busy)
# is a small part of every RTT: the limit must follow the downstream, not the test's machine.
LATENCY_MS = 100
# Every caller queues rather than being shed, the breaker stays out of the way, and the
# per-attempt timeouts are far above the slowest degraded answer (0.1 s * (16 / 4)**2). Retries
# stay on: over HTTP/2 hypercorn sends GOAWAY after 1,000 requests on a connection, and the
# streams it did not process are retried, as in production.
SETTINGS: dict[str, Any] = {
    "bulkhead": {"adaptive": True, "max_concurrency": WIDTH, "max_queue": CALLERS, "max_wait": 30},
    "limits": {"max_connections": WIDTH, "max_keepalive_connections": WIDTH},
    "timeouts": {"connect": 5, "read": 10, "write": 5, "pool": 5},
    "deadline_seconds": 30,
    "breaker": {"minimum_calls": 100_000},
}


async def load(catalog: Downstream, seconds: float) -> list[int]:
    """CALLERS closed-loop callers for ``seconds``; the bulkhead's limit every 50 ms over the
    second half (it oscillates around where it settles: a median says where that is)."""
    stop = time.monotonic() + seconds
    limits: list[int] = []

    async def caller(n: int) -> None:
        while time.monotonic() < stop:
            await catalog.get(f"/items/{n}")

    async def sample() -> None:
        await asyncio.sleep(seconds / 2)
        while time.monotonic() < stop:
            limits.append(catalog.bulkhead.limit)
            await asyncio.sleep(0.05)

    async with asyncio.TaskGroup() as group:
        for n in range(CALLERS):
            group.create_task(caller(n))
        group.create_task(sample())
    return sorted(limits)


@pytest.mark.anyio
async def test_the_bulkhead_follows_the_downstreams_capacity_down_and_back_up(
    any_transport: tuple[RunningFaultServer, Any],
) -> None:
    fault, transport = any_transport
    fault.set_fault("items", "degrade", capacity=CAPACITY, latency_ms=LATENCY_MS)
    async with one_downstream(fault.base_url, **SETTINGS, **transport) as catalog:
        narrowed = await load(catalog, 6.0)
        fault.set_fault("items", "degrade", capacity=WIDTH, latency_ms=LATENCY_MS)  # it is back
        widened = await load(catalog, 6.0)  # as long as narrowing: a loaded machine is slower
        view = describe(catalog)["bulkhead"]
        assert catalog.bulkhead.in_flight == 0
    assert CAPACITY // 2 <= median(narrowed) <= 2 * CAPACITY, (narrowed, widened)
    assert median(widened) >= 3 * WIDTH // 4, (narrowed, widened)
    assert view["limit"] == view["adaptive"]["limit"]
    assert view["shed"] == 0  # the narrowing queued callers, it shed none


def median(values: list[int]) -> int:
    return values[len(values) // 2]
