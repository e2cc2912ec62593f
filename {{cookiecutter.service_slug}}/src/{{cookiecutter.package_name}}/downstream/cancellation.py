"""Repair at once what a cancelled call can leave stuck in httpcore's pool.

httpcore 1.0.9 (under httpx 0.28.1) has three cancellation holes, and route code cancels more
often than it looks (``TaskGroup`` siblings, ``asyncio.timeout``, client disconnects, shutdown):

- **Orphaned connection** (httpcore #1093): a task cancelled after the pool reserved a new
  connection for it and before its request ran leaves the connection reserved, owned by nobody.
- **Stranded request**: a cancellation landing inside the response's close (its shield stops
  anyio cancellation, not a native ``task.cancel()``) marks the stream closed but leaves the
  request in the pool; its HTTP/1.1 connection stays ACTIVE forever.
- **Abandoned connection**: a second cancellation landing inside a failed request's clean-up
  leaves its HTTP/1.1 connection ACTIVE after the request left the pool.

Each time a slot of ``max_connections`` is gone for good; with ``max_connections=1`` the next
call hits ``PoolTimeout``. So whenever a send or a read fails, the pool is checked for exactly
that damage and repaired: nothing runs on the happy path. (Running every call in a task of its
own that is never cancelled also closes these holes, but cost ~30 us a call in ``make bench``.)
httpcore2 has none of them: with httpx2 the checks are skipped.
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
    orphaned_connections,
    stranded_request,
)

POOL_LEAKS_ON_CANCEL = httpx.__name__ == "httpx"

ORPHANED = "httpcore#1093: a cancelled request left its new connection reserved with no owner"
STRANDED = "a cancellation inside the response's close left its request in the pool"
ABANDONED = "a cancellation inside a request's clean-up left its connection ACTIVE with no owner"


class PoolRepair:
    """Finds and repairs cancellation damage in one client's pool."""

    def __init__(self, client: httpx.AsyncClient, on_repaired: Callable[[str], None]) -> None:
        self.client = client
        self.on_repaired = on_repaired
        self.pending: set[asyncio.Task[Any]] = set()

    def after_cancelled_send(self) -> None:
        """A send was cancelled: look for an orphaned or abandoned connection, in the background."""
        if POOL_LEAKS_ON_CANCEL:
            self._in_background(self.repair_orphans())

    def release_if_stranded(self, response: httpx.Response) -> None:
        """Called once ``response`` was closed after a failed read (or a stream's block ended):
        if its request is stranded, take it out of the pool now.

        Synchronous, so a second cancellation cannot interrupt it; only the socket close waits.
        """
        if not POOL_LEAKS_ON_CANCEL:
            return
        pool = client_pool(self.client)
        pool_request = stranded_request(pool, response)
        if pool_request is None:
            return
        closing = detach_stranded(pool, pool_request)
        self.on_repaired(STRANDED)
        if closing:
            self._in_background(close_connections(pool, closing))

    async def repair_orphans(self) -> int:
        pool = client_pool(self.client)
        repaired = 0
        for connection in orphaned_connections(pool):
            cause = ORPHANED if connection_state(connection) == "connecting" else ABANDONED
            if await evict(pool, connection):
                repaired += 1
                self.on_repaired(cause)
        return repaired

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
