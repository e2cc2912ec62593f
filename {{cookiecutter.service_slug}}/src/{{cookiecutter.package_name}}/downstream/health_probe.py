"""While the breaker is half-open and no caller comes, ask the downstream's health path.

Why: the open -> half-open timer makes a quiet service *ready* to recover, but only calls close
the breaker, so the first callers after a quiet spell are its probes (and, beyond
``HALF_OPEN_CALLS`` of them, refused). With ``BREAKER__PROBE_PATH`` set, the service sends those
calls itself the moment the breaker turns half-open, one at a time, until the breaker closes or
reopens: traffic that returns finds it closed. Resilience4j and Polly have no such probe; it is
Envoy's active health checking, driven by the breaker's state.

A probe is an ordinary call through the pipeline (deadline, bulkhead, breaker permit, retries
for a GET), so it is counted, logged and bounded like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable

from .breaker import BreakerState, CircuitBreaker
from .errors import DownstreamError

#: 503s of a probe that never reached the downstream: callers hold the half-open permits, the
#: bulkhead or the pool, and their verdicts decide. A probe answered 503 ``retry_budget`` or
#: ``throttled`` was sent and failed: it counts, and stopping there would leave the breaker
#: half-open with nobody left to probe it.
NOT_SENT = frozenset({"breaker_open", "shed", "pool_exhausted"})


class HealthProbe:
    """Runs ``probe()`` while ``breaker`` is half-open; ``start`` is its state-change hook."""

    def __init__(
        self, breaker: CircuitBreaker, probe: Callable[[], Awaitable[object]], *, most: int
    ) -> None:
        self._breaker = breaker
        self._probe = probe
        self._most = most  # HALF_OPEN_CALLS: the breaker decides on that many verdicts
        self._task: asyncio.Task[None] | None = None
        self._pending = False  # a half-open period began that no round has probed yet

    def start(self) -> None:
        """Called on entering half-open, from a timer or within a call. The probe runs in an
        empty context: a caller's deadline and request id are not the probe's. A period that
        begins while the last one's probe is still out gets a round of its own after it."""
        self._pending = True
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        while self._pending:
            self._pending = False
            await self._round()

    async def _round(self) -> None:
        for _ in range(self._most):
            if self._breaker.state is not BreakerState.HALF_OPEN:
                return
            try:
                await self._probe()
            except DownstreamError as exc:
                if exc.reason in NOT_SENT or exc.verdict != "failed":
                    return  # nothing the breaker counts: another try would learn nothing

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
