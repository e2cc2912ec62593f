"""The pool contract, on every HTTP/1.1 engine a downstream can run on (setting ENGINE).

Whatever moves the bytes, the same settings give the same pool: ``max_connections`` is never
exceeded, at most ``max_keepalive_connections`` stay idle, a full pool is ``PoolTimeout`` (a 503
``pool_exhausted``, never retried) and the figures the monitor, metrics and debug view show are
the pool's real ones. Counts are taken on the fault server's side where they can be.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import aiohttp
import pytest

from {{ cookiecutter.package_name }}.downstream import aiohttp_transport
from {{ cookiecutter.package_name }}.downstream.errors import DownstreamUnavailable
from {{ cookiecutter.package_name }}.downstream.httplib import httpx

from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import one_downstream, wait_until

pytestmark = pytest.mark.slow
NO_BREAKER = {"minimum_calls": 100_000}


def pool_of(size: int, keepalive: int | None = None, **fields: Any) -> dict[str, Any]:
    limits = {"max_connections": size, "max_keepalive_connections": keepalive or size}
    bulkhead = {"max_concurrency": size}
    return {"limits": limits, "bulkhead": bulkhead, "breaker": NO_BREAKER, **fields}


@pytest.mark.anyio
async def test_max_connections_is_never_exceeded(fault: RunningFaultServer, engine: str) -> None:
    """Twelve requests at once through a pool of three: three connections, the rest wait (the
    answers are slow enough that a loaded machine still sees all twelve in the pool at once)."""
    fault.set_fault("items", "slow", latency_ms=500)
    timeouts = {"pool": 2.0, "read": 3.0}
    pool = pool_of(3, timeouts=timeouts)
    async with one_downstream(fault.base_url, engine=engine, **pool) as catalog:
        calls = [asyncio.ensure_future(catalog.client.get(f"/items/{i}")) for i in range(12)]
        await asyncio.sleep(0.2)
        busy = catalog.pool_stats()
        responses = await asyncio.gather(*calls)
    assert [r.status_code for r in responses] == [200] * 12
    assert fault.stats()["connections"] == 3
    assert (busy.active + busy.connecting, busy.requests_active, busy.requests_queued) == (3, 3, 9)


@pytest.mark.anyio
async def test_idle_connections_are_capped_by_max_keepalive(
    fault: RunningFaultServer, engine: str
) -> None:
    fault.set_fault("items", "slow", latency_ms=50)
    async with one_downstream(fault.base_url, engine=engine, **pool_of(4, keepalive=1)) as catalog:
        responses = await asyncio.gather(*(catalog.client.get(f"/items/{i}") for i in range(4)))
        assert [r.status_code for r in responses] == [200] * 4
        stats = catalog.pool_stats()
        assert (stats.idle, stats.active, stats.requests_active) == (1, 0, 0)
        wait_until(lambda: fault.stats()["open_connections"] == 1)  # the other three were closed


@pytest.mark.anyio
async def test_a_full_pool_is_a_503_and_never_retried(
    fault: RunningFaultServer, engine: str
) -> None:
    """A stream held outside the pipeline takes the only connection; the pipeline's call then
    waits the pool timeout, gets ``PoolTimeout`` and answers 503 without another attempt."""
    async with one_downstream(
        fault.base_url, engine=engine, timeouts={"pool": 0.2}, **pool_of(1)
    ) as catalog:
        async with catalog.client.stream("GET", "/items/held") as held:
            assert held.status_code == 200
            with pytest.raises(DownstreamUnavailable) as refused:
                await catalog.get("/items/refused")
            waiting = catalog.pool_stats()
        assert refused.value.reason == "pool_exhausted"
        assert catalog.outcomes["pool_exhausted"] == 1
        assert catalog.retry.retries_by_reason == {}
        assert (waiting.requests_active, waiting.requests_queued) == (1, 0)
        assert (await catalog.get("/items/after")).status_code == 200  # the slot came back
    assert fault.stats()["items"] == 2  # held and after; the refused call never left


@pytest.mark.anyio
async def test_raw_pool_exhaustion_is_pool_timeout(fault: RunningFaultServer, engine: str) -> None:
    pool = pool_of(1, timeouts={"pool": 0.1})
    async with (
        one_downstream(fault.base_url, engine=engine, **pool) as catalog,
        catalog.client.stream("GET", "/items/held"),
    ):
        with pytest.raises(httpx.PoolTimeout):
            await catalog.client.get("/items/refused")


@pytest.mark.anyio
async def test_a_refused_connection_is_a_connect_error(engine: str) -> None:
    async with one_downstream("http://127.0.0.1:9", engine=engine, **pool_of(1)) as catalog:
        with pytest.raises(httpx.ConnectError):
            await catalog.client.get("/items/1")
        assert catalog.pool_stats().connections == 0


@pytest.mark.anyio
async def test_a_read_timeout_is_read_timeout_and_frees_the_slot(
    fault: RunningFaultServer, engine: str
) -> None:
    fault.set_fault("items", "hang")
    timeouts = {"read": 0.2, "pool": 0.1}
    pool = pool_of(1, timeouts=timeouts)
    async with one_downstream(fault.base_url, engine=engine, **pool) as catalog:
        with pytest.raises(httpx.ReadTimeout):
            await catalog.client.get("/items/1")
        stats = catalog.pool_stats()
        assert (stats.active, stats.requests_active) == (0, 0)
        fault.set_fault("items", "healthy")
        assert (await catalog.client.get("/items/2")).status_code == 200


@pytest.mark.anyio
async def test_the_aiohttp_private_names_still_exist(fault: RunningFaultServer) -> None:
    """``aiohttp_transport`` reads the connector's idle and acquired sets and overrides its
    release: if a release moves them this fails naming the attribute."""
    async with one_downstream(fault.base_url, engine="aiohttp", **pool_of(2)) as catalog:
        assert (await catalog.client.get("/items/1")).status_code == 200
        transport = catalog.client._transport
        assert isinstance(transport, aiohttp_transport.AiohttpTransport)
        assert transport.session is not None
        connector = transport.session.connector
        for name in (aiohttp_transport.CONNECTOR_IDLE, aiohttp_transport.CONNECTOR_ACQUIRED):
            assert hasattr(connector, name), f"aiohttp {aiohttp.__version__} has no {name!r}"
        release = getattr(aiohttp.TCPConnector, aiohttp_transport.CONNECTOR_RELEASE)
        assert "should_close" in inspect.signature(release).parameters
        assert catalog.pool_stats().idle == 1
