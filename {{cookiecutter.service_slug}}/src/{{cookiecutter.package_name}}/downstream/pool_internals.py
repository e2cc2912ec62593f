"""Every access to httpx/httpcore internals, in one place, for both ``httpx`` and ``httpx2``.

Public API first: ``pool.connections`` and each connection's ``info()`` ("CONNECTING",
"'http://host:80', HTTP/1.1, ACTIVE, Request Count: 3", ...). Private names are used only
where nothing public exists: the client's pool (``client._transport._pool``), the pool's
request list (to tell queued from active requests and to find connections no request owns), the
pool request behind a response's stream, and the eviction of an orphaned connection or a
stranded request.
``tests/integration/test_pool_internals_contract.py`` fails naming the attribute when a library
release moves any of them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .aiohttp_transport import AiohttpTransport
from .httplib import httpx
from .pool_stats import PoolStats

# The private names this module relies on; the contract test checks each one.
CLIENT_TRANSPORT = "_transport"
TRANSPORT_POOL = "_pool"
POOL_REQUESTS = "_requests"
POOL_CONNECTIONS = "_connections"
POOL_ASSIGN = "_assign_requests_to_connections"
POOL_CLOSE = "_close_connections"
REQUEST_CONNECTION = "connection"
RESPONSE_STREAM = "_stream"  # httpx's BoundAsyncStream -> the transport's response stream
TRANSPORT_STREAM = "_httpcore_stream"  # httpx's AsyncResponseStream -> httpcore's PoolByteStream
STREAM_REQUEST = "_pool_request"  # PoolByteStream -> its request in the pool
CONNECTION_PROTOCOL = "_connection"  # AsyncHTTPConnection -> its HTTP/1.1 or HTTP/2 connection
PROTOCOL_STREAM = "_network_stream"  # ... -> its socket stream
PROTOCOL_EXPIRE_AT = "_expire_at"  # ... -> when keep-alive ends (None: in use)
POOL_CREATE = "create_connection"  # public: the pool's hook that makes each new connection
POOL_BACKEND = "_network_backend"  # the pool's httpcore.AsyncNetworkBackend


def client_pool(client: httpx.AsyncClient) -> Any | None:
    """The connection pool behind ``client`` (clients here are built with ``trust_env=False``,
    so there are no proxy mounts with pools of their own); None for a transport without one,
    such as a test's ``MockTransport``."""
    return getattr(getattr(client, CLIENT_TRANSPORT), TRANSPORT_POOL, None)


def client_transport(client: httpx.AsyncClient) -> httpx.AsyncBaseTransport:
    transport: httpx.AsyncBaseTransport = getattr(client, CLIENT_TRANSPORT)
    return transport


def stats_reader(client: httpx.AsyncClient) -> Callable[[], PoolStats]:
    """How to read ``client``'s pool figures, whichever engine it runs on."""
    transport = client_transport(client)
    if isinstance(transport, AiohttpTransport):
        return transport.stats
    pool = getattr(transport, TRANSPORT_POOL, None)
    return lambda: pool_stats(pool)


def connection_state(connection: Any) -> str:
    """``connecting``, ``active``, ``idle`` or ``closed``, from the public ``info()``.

    "connecting" covers both a socket still being opened ("CONNECTING") and a connection that is
    open but has never carried a request ("HTTP/1.1, NEW, ..."): either way it is reserved for a
    request that has not started on it yet.
    """
    info: str = connection.info()
    if info == "CONNECTING" or ", NEW," in info:
        return "connecting"
    if info == "CONNECTION FAILED" or "CLOSED" in info:
        return "closed"
    if "IDLE" in info:
        return "idle"
    return "active"


def is_http2(connection: Any) -> bool:
    """``info()`` starts with the origin: "'https://host:443', HTTP/2, ACTIVE, Request Count: 3"."""
    return ", HTTP/2, " in connection.info()


def pool_stats(pool: Any | None) -> PoolStats:
    if pool is None:
        return PoolStats()
    counts = {"connecting": 0, "active": 0, "idle": 0, "closed": 0}
    http2 = 0
    for connection in pool.connections:
        counts[connection_state(connection)] += 1
        http2 += is_http2(connection)
    requests = getattr(pool, POOL_REQUESTS)
    queued = sum(1 for request in requests if request.is_queued())
    return PoolStats(
        **counts, http2=http2, requests_active=len(requests) - queued, requests_queued=queued
    )


def orphaned_connections(pool: Any) -> list[Any]:
    """Connections no request owns that nothing will ever use or close again, each counting
    against ``max_connections`` for good. Two shapes, both left by cancellations in httpcore
    1.0.9:

    - reserved for a request (connecting, or open and never used) whose task was cancelled
      right after assignment (httpcore #1093). An HTTP/2 connection still connecting is
      available to others, so it is never an orphan;
    - an HTTP/1.1 connection still ACTIVE: a second cancellation landed inside its
      end-of-request clean-up, which sets it IDLE or closes it before its request leaves the
      pool;
    - an HTTP/2 connection still ACTIVE with no request of the pool on it: a stream whose
      request left the pool without closing it (a cancellation in the close) keeps it ACTIVE,
      so it never turns idle and never expires; every live stream has its request in the pool,
      so nothing of ours is on it. Seen in the load test, one connection per such cancellation.

    The pool assigns connections synchronously, and a connection stops being ACTIVE before its
    request leaves the pool, so this holds at any instant: an orphan can be closed when seen."""
    owned = {id(getattr(request, REQUEST_CONNECTION)) for request in getattr(pool, POOL_REQUESTS)}
    return [
        connection
        for connection in pool.connections
        if id(connection) not in owned and _is_stuck(connection)
    ]


def usable_http2_connections(pool: Any) -> list[Any]:
    """The HTTP/2 connections new requests would be sent on. The pool opens a second HTTP/2
    connection to an origin only once the first stops being available, so for a client with one
    base URL this is the one connection its HTTP/2 requests share."""
    return [c for c in pool.connections if is_http2(c) and c.is_available()]


def expire_closed_idle_http2(pool: Any) -> int:
    """Mark each idle HTTP/2 connection the server has already closed (or sent GOAWAY on) as
    expired, so the pool closes it instead of sending the next request on it; how many.

    httpcore 1.0.9 and httpcore2 2.16 check this for HTTP/1.1 only: an idle HTTP/1.1
    connection whose socket is readable can only be a server's close, and ``has_expired()``
    says so. Their HTTP/2 ``has_expired()`` reads the keep-alive clock alone, so a downstream
    that closes idle connections sooner than KEEPALIVE_EXPIRY (nginx, Envoy and most proxies
    have an idle timeout) failed the next request with "Server disconnected", every time.
    A server's PING on an idle connection also reads as readable: one reconnect, nothing lost.
    """
    expired = 0
    for connection in pool.connections:
        if not connection.is_idle() or not is_http2(connection):
            continue
        protocol = getattr(connection, CONNECTION_PROTOCOL)
        if getattr(protocol, PROTOCOL_STREAM).get_extra_info("is_readable"):
            setattr(protocol, PROTOCOL_EXPIRE_AT, 0.0)
            expired += 1
    return expired


def _is_stuck(connection: Any) -> bool:
    state = connection_state(connection)
    if state == "connecting":
        return not connection.is_available()
    return state == "active"


async def evict(pool: Any, connection: Any) -> bool:
    """Drop ``connection`` from the pool, close it, and let queued requests use the slot."""
    connections: list[Any] = getattr(pool, POOL_CONNECTIONS)
    if connection not in connections:
        return False
    connections.remove(connection)
    closing: list[Any] = getattr(pool, POOL_ASSIGN)()
    await getattr(pool, POOL_CLOSE)(closing)
    await connection.aclose()
    return True


def stranded_request(pool: Any, response: httpx.Response) -> Any | None:
    """The pool's request for ``response`` if it is still in the pool although the response was
    closed: httpcore 1.0.9 marks its stream closed before the shielded close, and a native
    asyncio cancellation landing there skips removing the request. Nothing will ever remove it;
    its HTTP/1.1 connection stays ACTIVE and counts against ``max_connections`` forever."""
    bound = getattr(response.stream, "checked", response.stream)  # see bodies.CheckedBody
    stream = getattr(getattr(bound, RESPONSE_STREAM, None), TRANSPORT_STREAM, None)
    pool_request = getattr(stream, STREAM_REQUEST, None)
    if pool_request is None:
        return None
    in_pool = any(request is pool_request for request in getattr(pool, POOL_REQUESTS))
    return pool_request if in_pool else None


def detach_stranded(pool: Any, pool_request: Any) -> list[Any]:
    """Remove a stranded request, and its HTTP/1.1 connection unless that finished its close and
    is idle, then let queued requests have the slots; returns the connections to close.

    No ``await`` in here, so no cancellation can stop it half-way. An HTTP/2 connection is kept:
    other streams share it, and it stays usable without this request.
    """
    getattr(pool, POOL_REQUESTS).remove(pool_request)
    closing: list[Any] = []
    connection = getattr(pool_request, REQUEST_CONNECTION)
    connections: list[Any] = getattr(pool, POOL_CONNECTIONS)
    if (
        connection is not None
        and connection in connections
        and connection_state(connection) == "active"
        and not is_http2(connection)
    ):
        connections.remove(connection)
        closing.append(connection)
    closing.extend(getattr(pool, POOL_ASSIGN)())
    return closing


def wrap_network_backend(pool: Any, wrap: Callable[[Any], Any]) -> None:
    """Put ``wrap(backend)`` in place of the network backend every new connection opens with."""
    setattr(pool, POOL_BACKEND, wrap(getattr(pool, POOL_BACKEND)))


def track_created(pool: Any) -> weakref.WeakSet[Any]:
    """Every connection ``pool`` makes from now on, held weakly: how a connection that left the
    pool unclosed is found again (``unpooled_open``)."""
    created: weakref.WeakSet[Any] = weakref.WeakSet()
    create = getattr(pool, POOL_CREATE)

    def create_and_track(origin: Any) -> Any:
        connection = create(origin)
        created.add(connection)
        return connection

    setattr(pool, POOL_CREATE, create_and_track)
    return created


def unpooled_open(pool: Any, created: Iterable[Any]) -> list[Any]:
    """Connections made by ``pool`` that are out of it and not closed.

    httpcore takes connections out of the pool, then closes them one by one in
    ``_close_connections``; its shield stops anyio cancellation only, so a native cancellation
    landing there skips the rest of the list. Their sockets stay open, owned by nothing, until a
    full garbage collection, which ``gc.freeze()`` makes rare. Seen with HTTP/2 connections
    expiring under cancellations: 5-6 sockets left open in 1,200 cancelled calls.
    """
    pooled = {id(connection) for connection in getattr(pool, POOL_CONNECTIONS)}
    return [
        connection
        for connection in list(created)
        if id(connection) not in pooled and connection_state(connection) != "closed"
    ]


async def close_connections(pool: Any, connections: list[Any]) -> None:
    await getattr(pool, POOL_CLOSE)(connections)
