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
from .errors import DownstreamError, DownstreamUnavailable


class HealthProbe:
    """Runs ``probe()`` while ``breaker`` is half-open; ``start`` is its state-change hook."""

    def __init__(
        self, breaker: CircuitBreaker, probe: Callable[[], Awaitable[object]], *, most: int
    ) -> None:
        self._breaker = breaker
        self._probe = probe
        self._most = most  # HALF_OPEN_CALLS: the breaker decides on that many verdicts
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Called on entering half-open, from a timer or within a call. The probe runs in an
        empty context: a caller's deadline and request id are not the probe's."""
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        for _ in range(self._most):
            if self._breaker.state is not BreakerState.HALF_OPEN:
                return
            try:
                await self._probe()
            except DownstreamUnavailable:
                return  # not sent: callers hold the permits (their verdicts decide) or the budget
            except DownstreamError as exc:
                if exc.verdict != "failed":
                    return  # nothing the breaker counts: another try would learn nothing

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
