"""Close at once the connection a cancelled call can orphan (httpcore #1093).

httpcore 1.0.9 (under httpx 0.28.1) leaks a connection when a task is cancelled after the pool
reserved a new connection for it and before its request ran: the connection stays reserved,
owned by nobody, and counts against ``max_connections``; with ``max_connections=1`` the next
call hits ``PoolTimeout``. Route code cancels more often than it looks (``TaskGroup`` siblings,
shutdown), so whenever a send is cancelled the pool is scanned and any orphan is closed right
away, in a task of its own. Nothing runs on the happy path: shielding every send in a task of
its own instead cost ~30 us a call (make bench). httpcore2 fixed the bug in 2.6.0; with httpx2
the scan simply finds nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .httplib import httpx
from .pool_internals import client_pool, evict, orphaned_connections

POOL_LEAKS_ON_CANCEL = httpx.__name__ == "httpx"


class OrphanRepair:
    """Finds and closes orphaned connections in one client's pool."""

    def __init__(self, client: httpx.AsyncClient, on_repaired: Callable[[Any], None]) -> None:
        self.client = client
        self.on_repaired = on_repaired
        self.pending: set[asyncio.Task[int]] = set()

    def after_cancel(self) -> None:
        """Called when a send was cancelled: repair in the background, never in the way."""
        task = asyncio.get_running_loop().create_task(self.repair())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def repair(self) -> int:
        pool = client_pool(self.client)
        repaired = 0
        for connection in orphaned_connections(pool):
            if await evict(pool, connection):
                repaired += 1
                self.on_repaired(pool)
        return repaired
