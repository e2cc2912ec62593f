"""Repair at once what a cancelled call can leave stuck in httpcore's pool.

httpcore 1.0.9 (under httpx 0.28.1) has three cancellation holes, and calls are cancelled more
often than it looks (``TaskGroup`` siblings, the deadline's backstop, client disconnects,
shutdown), plus an HTTP/2 deadlock the backstop turns into broken stream accounting:

- **Orphaned connection** (httpcore #1093): a task cancelled after the pool reserved a new
  connection for it and before its request ran leaves the connection reserved, owned by nobody.
- **Stranded request**: a cancellation landing inside the response's close (its shield stops
  anyio cancellation, not a native ``task.cancel()``) marks the stream closed but leaves the
  request in the pool; its HTTP/1.1 connection stays ACTIVE forever.
- **Abandoned connection**: a second cancellation landing inside a failed request's clean-up
  leaves its HTTP/1.1 connection ACTIVE after the request left the pool.
- **Wedged HTTP/2 connection**: when a downstream lowers MAX_CONCURRENT_STREAMS on a live
  connection, httpcore 1.0.9's reader waits, holding the read lock, for stream slots only
  readers can free: a deadlock. The call deadline's backstop cancels the stuck calls, which can
  leave streams the h2 state machine still counts as open; from then on every request on that
  connection fails at once with ``LocalProtocolError`` (too many streams) and nothing reads the
  frame that would raise the limit again.

Each of the first three loses a slot of ``max_connections`` for good; with
``max_connections=1`` the next call hits ``PoolTimeout``; the fourth fails every call until a
restart. So whenever a send or a read fails, the pool is checked for exactly that damage and
repaired: nothing runs on the happy path. (Running every call in a task of its own that is
never cancelled also closes the cancellation holes, but cost ~30 us a call in ``make bench``.)
httpcore2 has none of these holes (with httpx2 those checks are skipped) and handles a lowered
stream limit; a connection in ``LocalProtocolError`` is closed on either library.

Two more holes, in httpcore and httpcore2 alike, cost file descriptors instead: sockets left
open, owned by nothing, until a full garbage collection (rare once ``gc.freeze()`` ran). A
cancellation inside the pool's closing of connections it took out of it skips the rest of them
(``close_unpooled``), and one during a TLS handshake leaves its TCP socket open
(``CloseCancelledTls``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from .httplib import httpx
from .pool_internals import (
    client_pool,
    close_connections,
    connection_state,
    detach_stranded,
    evict,
    is_http2,
    orphaned_connections,
    stranded_request,
    track_created,
    unpooled_open,
    usable_http2_connections,
    wrap_network_backend,
)

POOL_LEAKS_ON_CANCEL = httpx.__name__ == "httpx"

ORPHANED = "httpcore#1093: a cancelled request left its new connection reserved with no owner"
STRANDED = "a cancellation inside the response's close left its request in the pool"
ABANDONED = "a cancellation inside a request's clean-up left its connection ACTIVE with no owner"
WEDGED = "an HTTP/2 connection's stream accounting broke (LocalProtocolError on every request)"
DEAD_HTTP2 = "a cancelled response close left its HTTP/2 stream open and the connection ACTIVE"
UNPOOLED = "a cancellation inside httpcore's close left a connection it took out of the pool open"


class CloseCancelledTls:
    """httpcore's network backend, closing the TCP socket of a TLS handshake that did not end.

    ``start_tls`` in httpcore 1.0.9 and httpcore2 closes the socket on ``Exception`` only, so a
    cancelled handshake (a deadline, a ``TaskGroup`` sibling, a client gone) left it open.
    Only the new stream's ``start_tls`` is replaced: reads and writes go to the stream as before.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
        stream = await self.backend.connect_tcp(*args, **kwargs)
        start_tls = stream.start_tls

        async def start_tls_or_close(*tls_args: Any, **tls_kwargs: Any) -> Any:
            try:
                return await start_tls(*tls_args, **tls_kwargs)
            except BaseException:
                await stream.aclose()
                raise

        stream.start_tls = start_tls_or_close
        return stream

    def __getattr__(self, name: str) -> Any:  # connect_unix_socket, sleep
        return getattr(self.backend, name)


class PoolRepair:
    """Finds and repairs cancellation damage in one client's pool."""

    def __init__(self, client: httpx.AsyncClient, on_repaired: Callable[[str], None]) -> None:
        self.pool = client_pool(client)  # None: not httpcore's pool (a test's fake), nothing to do
        self.on_repaired = on_repaired
        self.pending: set[asyncio.Task[Any]] = set()
        if self.pool is not None:
            wrap_network_backend(self.pool, CloseCancelledTls)
        self.created = track_created(self.pool) if self.pool is not None else None
        self.unpooled_suspects: list[Any] = []

    def after_cancelled_send(self) -> None:
        """A send was cancelled: look for an orphaned or abandoned connection, in the background."""
        if POOL_LEAKS_ON_CANCEL and self.pool is not None:
            self._in_background(self.repair_orphans())

    def release_if_stranded(self, response: httpx.Response) -> None:
        """Called once ``response`` was closed after a failed read (or a stream's block ended):
        if its request is stranded, take it out of the pool now.

        Synchronous, so a second cancellation cannot interrupt it; only the socket close waits.
        """
        pool = self.pool
        if not POOL_LEAKS_ON_CANCEL or pool is None:
            return
        pool_request = stranded_request(pool, response)
        if pool_request is None:
            return
        closing = detach_stranded(pool, pool_request)
        self.on_repaired(STRANDED)
        if closing:
            self._in_background(close_connections(pool, closing))

    def after_protocol_error(self) -> None:
        """httpcore's own HTTP/2 state is broken: close the connection, the next call opens one."""
        if self.pool is not None:
            self._in_background(self.close_http2(self.pool))

    async def close_http2(self, pool: Any) -> None:
        for connection in usable_http2_connections(pool):
            if await evict(pool, connection):
                self.on_repaired(WEDGED)

    async def repair_orphans(self) -> int:
        pool = self.pool
        if pool is None:
            return 0
        repaired = 0
        for connection in orphaned_connections(pool):
            if connection not in orphaned_connections(pool):
                continue  # a request took it while an earlier eviction awaited its close
            if connection_state(connection) == "connecting":
                cause = ORPHANED
            else:
                cause = DEAD_HTTP2 if is_http2(connection) else ABANDONED
            if await evict(pool, connection):
                repaired += 1
                self.on_repaired(cause)
        return repaired

    async def close_unpooled(self, *, all_now: bool = False) -> int:
        """Close connections httpcore took out of the pool and never closed (``unpooled_open``).

        The monitor calls this once a tick and closes what was already there on the tick
        before: httpcore marks a connection closed as its close starts, so one still open a
        tick after leaving the pool was skipped, never to be closed. ``all_now`` at shutdown.
        """
        if self.created is None:
            return 0
        found = unpooled_open(self.pool, self.created)
        if all_now:
            abandoned, self.unpooled_suspects = found, []
        else:
            seen = {id(connection) for connection in self.unpooled_suspects}
            abandoned = [c for c in found if id(c) in seen]
            self.unpooled_suspects = [c for c in found if id(c) not in seen]
        for connection in abandoned:
            self.created.discard(connection)
            await connection.aclose()
            self.on_repaired(UNPOOLED)
        return len(abandoned)

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
