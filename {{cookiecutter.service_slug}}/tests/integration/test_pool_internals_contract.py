"""The contract between ``downstream/pool_internals.py`` and the installed httpx/httpcore.

When a library release moves or renames a private attribute the pool monitor relies on, this
fails naming it, instead of the monitor going quietly blind in production. (aiohttp's side of
the same contract is in ``test_pool_contract.py``.)
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import anyio
import pytest

from {{ cookiecutter.package_name }}.downstream import pool_internals
from {{ cookiecutter.package_name }}.downstream.config import DownstreamSettings
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstream.registry import build_client, build_ssl_context

from loadtest.fault_server.harness import RunningFaultServer, serve_in_thread


def require(owner: Any, attribute: str, what: str) -> Any:
    assert hasattr(owner, attribute), (
        f"{httpx.__name__} {httpx.__version__}: {type(owner).__module__}.{type(owner).__name__} "
        f"has no {attribute!r} ({what}); update downstream/pool_internals.py"
    )
    return getattr(owner, attribute)


@pytest.mark.anyio
async def test_private_names_still_exist_and_behave(fault: RunningFaultServer) -> None:
    settings = DownstreamSettings(base_url=fault.base_url, engine="httpcore")
    client = build_client(settings, build_ssl_context(None, verify=True))
    async with client:
        transport = require(client, pool_internals.CLIENT_TRANSPORT, "the client's transport")
        pool = require(transport, pool_internals.TRANSPORT_POOL, "the transport's pool")
        assert pool is pool_internals.client_pool(client)
        assert pool is not None
        requests = require(pool, pool_internals.POOL_REQUESTS, "requests waiting or running")
        connections = require(pool, pool_internals.POOL_CONNECTIONS, "the pool's connections")
        assert isinstance(requests, list)
        assert isinstance(connections, list)
        assert callable(require(pool, pool_internals.POOL_ASSIGN, "re-assignment after changes"))
        close = require(pool, pool_internals.POOL_CLOSE, "closing connections")
        assert inspect.iscoroutinefunction(close)
        assert callable(require(pool, pool_internals.POOL_CREATE, "making connections"))
        backend = require(pool, pool_internals.POOL_BACKEND, "the network backend")
        assert inspect.iscoroutinefunction(backend.connect_tcp)
        created = pool_internals.track_created(pool)

        async with client.stream("GET", "/items/1") as response:  # a request in flight
            assert response.status_code == 200
            [running] = require(pool, pool_internals.POOL_REQUESTS, "requests")
            assert require(running, pool_internals.REQUEST_CONNECTION, "the owner link") is not None
            assert running.is_queued() is False
            [connection] = pool.connections
            assert re.match(r"^'http://127\.0\.0\.1:\d+', HTTP/1\.1, ACTIVE", connection.info())
            assert list(created) == [connection]  # made through the hook, so it is tracked
            assert pool_internals.unpooled_open(pool, created) == []
            assert pool_internals.pool_stats(pool).active == 1
            bound = require(response.stream, pool_internals.RESPONSE_STREAM, "httpx's stream")
            pool_stream = require(bound, pool_internals.TRANSPORT_STREAM, "httpcore's stream")
            assert require(pool_stream, pool_internals.STREAM_REQUEST, "its request") is running
            assert pool_internals.stranded_request(pool, response) is running  # still in the pool
            await response.aread()  # an unread body would make httpcore drop the connection
        assert pool_internals.stranded_request(pool, response) is None
        [connection] = pool.connections
        assert re.match(r"^'http://127\.0\.0\.1:\d+', HTTP/1\.1, IDLE", connection.info())
        stats = pool_internals.pool_stats(pool)
        assert (stats.idle, stats.active, stats.requests_active) == (1, 0, 0)
        assert pool_internals.orphaned_connections(pool) == []
        assert await pool_internals.evict(pool, connection) is True
        assert pool.connections == []
        assert pool_internals.unpooled_open(pool, created) == []  # evicted and closed


@pytest.mark.anyio
async def test_an_idle_http2_connection_the_server_closed_is_expired() -> None:
    """The HTTP/2 names ``expire_closed_idle_http2`` uses, and what it does with them."""
    with serve_in_thread(tls=True) as fault:
        settings = DownstreamSettings(base_url=fault.base_url, http2=True, ca_bundle=fault.ca_path)
        client = build_client(settings, build_ssl_context(fault.ca_path, verify=True))
        async with client:
            assert (await client.get("/items/1")).http_version == "HTTP/2"
            pool = pool_internals.client_pool(client)
            assert pool is not None
            [connection] = pool.connections
            protocol = require(connection, pool_internals.CONNECTION_PROTOCOL, "the h2 connection")
            require(protocol, pool_internals.PROTOCOL_STREAM, "its socket stream")
            require(protocol, pool_internals.PROTOCOL_EXPIRE_AT, "its keep-alive expiry")
            assert pool_internals.expire_closed_idle_http2(pool) == 0  # open: left alone
            fault.set_fault("*", "idle_close", idle_ms=1)  # from the next time it goes idle
            assert (await client.get("/items/2")).status_code == 200
            expired = 0
            for _ in range(500):  # the server closes it within ms of idling; CI can be slow
                expired = pool_internals.expire_closed_idle_http2(pool)
                if expired:
                    break
                await anyio.sleep(0.01)
            assert expired == 1
            assert connection.has_expired()


@pytest.mark.anyio
async def test_an_active_http2_connection_no_request_owns_is_an_orphan() -> None:
    """What a cancelled response close leaves: the request gone from the pool, its stream still
    in the connection's books (here the request is taken out by hand), so the connection stays
    ACTIVE and never expires. Nothing of ours is on it: the repair closes it."""
    with serve_in_thread(tls=True) as fault:
        settings = DownstreamSettings(base_url=fault.base_url, http2=True, ca_bundle=fault.ca_path)
        client = build_client(settings, build_ssl_context(fault.ca_path, verify=True))
        async with client:
            pool = pool_internals.client_pool(client)
            assert pool is not None
            # Never closed, as after the cancellation: closing would take the request out again.
            response = await client.send(client.build_request("GET", "/items/1"), stream=True)
            assert response.http_version == "HTTP/2"
            assert pool_internals.orphaned_connections(pool) == []  # its request owns it
            require(pool, pool_internals.POOL_REQUESTS, "requests").clear()  # the repair's part
            [connection] = pool_internals.orphaned_connections(pool)
            assert await pool_internals.evict(pool, connection) is True
            assert pool.connections == []
            assert (await client.get("/items/2")).status_code == 200  # a new connection
