"""Send a request so that cancelling the caller cannot orphan a pool connection.

httpcore 1.0.9 (under httpx 0.28.1) leaks a connection forever when a task is cancelled after
the pool assigned it a new connection and before the request ran (httpcore #1093): the
connection stays CONNECTING, owned by nobody, and counts against ``max_connections``. Route
code cancels more often than it looks (``TaskGroup`` siblings, shutdown), so with that library
the send runs in its own task under ``asyncio.shield``: the caller may go, the send finishes
(bounded by httpx's timeouts) and its response is closed in the background. The abandoned
send still occupies a connection, so the caller's bulkhead slot must follow it
(``take_abandoned``). httpcore2 fixed the bug in 2.6.0, so with httpx2 the send is awaited
directly and costs nothing extra.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .httplib import httpx

POOL_LEAKS_ON_CANCEL = httpx.__name__ == "httpx"


class CancellationSafeSender:
    """``send`` for one client; keeps abandoned sends alive until their responses are closed."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.abandoned: set[asyncio.Future[Any]] = set()
        self.abandoned_by: dict[asyncio.Task[object], asyncio.Future[httpx.Response]] = {}

    async def send(self, request: httpx.Request) -> httpx.Response:
        if not POOL_LEAKS_ON_CANCEL:
            return await self.client.send(request, stream=True)
        task = asyncio.ensure_future(self.client.send(request, stream=True))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self.abandoned.add(task)
            owner = asyncio.current_task()
            if owner is not None:
                self.abandoned_by[owner] = task
            task.add_done_callback(self._close_abandoned)
            raise

    def take_abandoned(self) -> asyncio.Future[httpx.Response] | None:
        """The send the current task just walked away from, if any (called on its error path)."""
        owner = asyncio.current_task()
        return self.abandoned_by.pop(owner, None) if owner is not None else None

    def _close_abandoned(self, task: asyncio.Future[httpx.Response]) -> None:
        self.abandoned.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        closing = asyncio.ensure_future(task.result().aclose())
        self.abandoned.add(closing)
        closing.add_done_callback(self.abandoned.discard)
