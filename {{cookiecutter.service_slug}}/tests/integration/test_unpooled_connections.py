"""No socket is left open, owned by nothing, by a cancelled call.

httpcore and httpcore2 close the connections they take out of the pool one after the other, and
a native cancellation landing in that loop skips the rest; they close a socket whose TLS
handshake failed, but not one whose handshake was cancelled. Either way the socket stays open
until a full garbage collection (rare once ``gc.freeze()`` ran). HTTP/2 connections expiring and
reopening while calls are cancelled do both. Real TLS server, real sockets.
"""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import Iterator
from typing import Any

import psutil  # type: ignore[import-untyped]  # no type stubs
import pytest

from {{ cookiecutter.package_name }}.downstream import pool_internals
from {{ cookiecutter.package_name }}.downstream.cancellation import POOL_LEAKS_ON_CANCEL
from {{ cookiecutter.package_name }}.downstream.client import Downstream
from {{ cookiecutter.package_name }}.downstream.pool_internals import client_pool, unpooled_open

from loadtest.fault_server.harness import RunningFaultServer, serve_in_thread
from tests.integration.conftest import one_downstream

NO_BREAKER = {"minimum_calls": 100_000}
SHORT_KEEPALIVES = {"max_connections": 4, "max_keepalive_connections": 4, "keepalive_expiry": 0.05}


@pytest.fixture
def tls_fault() -> Iterator[RunningFaultServer]:
    with serve_in_thread(tls=True) as server:
        yield server


@pytest.fixture
def no_collection() -> Iterator[None]:
    """A collection would close the sockets itself and hide the leak (with or without the fix)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def socket_open(connection: Any) -> bool:
    protocol = getattr(connection, pool_internals.CONNECTION_PROTOCOL)
    stream = getattr(protocol, pool_internals.PROTOCOL_STREAM)
    sock = stream.get_extra_info("socket")
    return sock is not None and sock.fileno() != -1


def established_to(server: RunningFaultServer) -> int:
    """This process's open TCP connections to ``server`` (the harness may hold one of its own)."""
    port = int(server.base_url.rsplit(":", 1)[1])
    return sum(
        1
        for connection in psutil.Process().net_connections("tcp")
        if connection.raddr and connection.raddr.port == port and connection.status == "ESTABLISHED"
    )


def downstream_fields(server: RunningFaultServer) -> dict[str, Any]:
    return {
        "http2": True,
        "ca_bundle": str(server.ca_path),
        "limits": SHORT_KEEPALIVES,
        "bulkhead": {"max_concurrency": 4, "max_queue": 1000, "max_wait": 5},
        "breaker": NO_BREAKER,
    }


async def cancel_calls(catalog: Downstream, rounds: int, *, until_left_open: bool) -> list[Any]:
    """``rounds`` rounds of 8 calls, half of them cancelled at random, while short keep-alives
    expire and reopen connections; with ``until_left_open``, only until httpcore leaves a
    connection it took out of the pool open (returned)."""
    pool = client_pool(catalog.client)
    created = catalog.repair.created
    rng = random.Random(7)

    async def call(item: int) -> None:
        try:
            await catalog.get("/items/{item}", path_params={"item": item})
        except Exception:  # failures are not what this counts
            return

    for _ in range(rounds):
        calls = [asyncio.ensure_future(call(i)) for i in range(8)]
        await asyncio.sleep(rng.uniform(0, 0.01))
        for task in rng.sample(calls, 4):
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await asyncio.sleep(rng.uniform(0, 0.08))  # long enough for idle connections to expire
        left_open = [] if created is None else unpooled_open(pool, created)
        if left_open and until_left_open:
            return left_open
    return []


@pytest.mark.anyio
@pytest.mark.usefixtures("no_collection")
async def test_connections_left_open_outside_the_pool_are_closed(
    tls_fault: RunningFaultServer,
) -> None:
    async with one_downstream(tls_fault.base_url, **downstream_fields(tls_fault)) as catalog:
        pool = client_pool(catalog.client)
        created = catalog.repair.created
        assert pool is not None
        assert created is not None
        left_open = await cancel_calls(catalog, rounds=600, until_left_open=True)
        assert left_open, "no connection was left open in 600 rounds: nothing to prove"
        assert all(socket_open(connection) for connection in left_open)
        before = catalog.orphans_repaired

        assert await catalog.repair.close_unpooled() == 0  # first sight: only suspected
        closed = await catalog.repair.close_unpooled()  # still open a tick later: abandoned

        assert closed >= len(left_open)
        assert unpooled_open(pool, created) == []
        assert catalog.orphans_repaired == before + closed
        assert not any(socket_open(connection) for connection in left_open)


@pytest.mark.anyio
@pytest.mark.usefixtures("no_collection")
@pytest.mark.xfail(
    not POOL_LEAKS_ON_CANCEL,
    reason="httpcore2 2.17 still drops 0-3 TLS streams in 800 such calls, by a path not found yet",
    strict=False,
)
async def test_closing_the_downstream_leaves_no_socket_open(tls_fault: RunningFaultServer) -> None:
    """Whatever was left open on the way, by the pool's close or by a cancelled handshake."""
    harness_own = established_to(tls_fault)
    async with one_downstream(tls_fault.base_url, **downstream_fields(tls_fault)) as catalog:
        await cancel_calls(catalog, rounds=100, until_left_open=False)
    await asyncio.sleep(0.05)
    assert established_to(tls_fault) == harness_own
