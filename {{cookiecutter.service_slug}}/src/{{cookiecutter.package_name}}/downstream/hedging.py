"""Hedged requests: a slow idempotent call gets a second attempt, and the first answer wins.

Polly's hedging strategy and gRPC's hedging policy (proposal A6) do this; no maintained Python
library races attempts on httpx (tenacity and stamina retry after a failure, they never send a
second attempt while the first runs), so it is written here, the way this layer needs it:

- Only a call's first attempt is hedged, and only an idempotent one (``retry.is_idempotent``);
  when both attempts fail, the call's retries follow as without hedging (gRPC, too, never
  mixes the two policies on one attempt).
- After the delay (``HEDGE__DELAY``, or ``HEDGE__DELAY_PERCENTILE`` of recent first attempts)
  one hedge is sent, on a copy of the request: each attempt's timeouts, deadline header and
  trace are its own. The first usable answer (not 5xx or 429, not an error) wins; a failed
  attempt waits for the other, as Polly's does.
- The loser is cancelled and awaited: what its cancellation leaves in httpcore's pool is
  repaired where every cancelled send is (``attempts`` and ``cancellation.PoolRepair``).
- A hedge never multiplies an outage: it needs the breaker closed, a bulkhead slot free at once
  (held while it runs, so connections never outgrow the bulkhead) and a budget token. Each
  hedgeable call earns ``BUDGET_RATIO`` of a token and at most ``BUDGET_BURST`` are saved, so
  hedges stay within that fraction of calls, plus the burst.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from .breaker import BreakerState, CircuitBreaker, is_failure_status
from .bulkhead import Bulkhead
from .config import HedgeSettings
from .httplib import httpx
from .instruments import Instruments

#: Hedges a quiet spell may save up: a few slow answers at once are hedged, a slow spell is not.
BUDGET_BURST = 5.0
#: ``0.05 * 20`` sums to just under 1 in floats: the slack lets the 20th call's token count.
_ROUNDING_SLACK = 1e-9
#: The percentile delay: over this many recent first attempts, once there are MIN_SAMPLES,
#: sorted again every RECOMPUTE_EVERY (a sort per call would cost more than the hedge saves).
SAMPLES = 256
MIN_SAMPLES = 20
RECOMPUTE_EVERY = 16

Attempt = Callable[[httpx.Request], Awaitable[httpx.Response]]


class HedgeBudget:
    """A token bucket earned by calls: hedges are at most ``ratio`` of them, plus the burst."""

    __slots__ = ("balance", "ratio")

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self.balance = 0.0

    def deposit(self) -> None:
        self.balance = min(BUDGET_BURST, self.balance + self.ratio)

    def has_token(self) -> bool:
        return self.balance >= 1.0 - _ROUNDING_SLACK

    def spend(self) -> None:
        self.balance = max(0.0, self.balance - 1.0)


class HedgeDelay:
    """How long a first attempt runs before it is hedged: fixed, or a percentile of recent ones."""

    __slots__ = ("current", "percentile", "samples", "since_sort")

    def __init__(self, settings: HedgeSettings) -> None:
        self.current = settings.delay
        self.percentile = settings.delay_percentile
        self.samples: deque[float] = deque(maxlen=SAMPLES)
        self.since_sort = 0

    def observe(self, seconds: float) -> None:
        """A first attempt answered in ``seconds``, unhedged (a hedged call is not seen: the
        percentile leans low, and the budget bounds what that costs)."""
        if not self.percentile:
            return
        self.samples.append(seconds)
        self.since_sort += 1
        if self.since_sort >= RECOMPUTE_EVERY and len(self.samples) >= MIN_SAMPLES:
            self.since_sort = 0
            ordered = sorted(self.samples)
            self.current = ordered[min(len(ordered) - 1, int(len(ordered) * self.percentile / 100))]


class Hedging:
    """Hedges one downstream's slow first attempts; ``Attempts`` calls ``first_answer``."""

    def __init__(
        self,
        settings: HedgeSettings,
        breaker: CircuitBreaker,
        bulkhead: Bulkhead,
        instruments: Instruments,
    ) -> None:
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.instruments = instruments
        self.budget = HedgeBudget(settings.budget_ratio)
        self.delay = HedgeDelay(settings)
        self.calls = 0
        self.sent: Counter[str] = Counter()  # by result: won, lost, failed
        self.skipped: Counter[str] = Counter()  # by reason

    async def first_answer(
        self, attempt: Attempt, request: httpx.Request, deadline: float
    ) -> httpx.Response:
        """``attempt(request)``, hedged once it ran for the delay; no task outlives the call."""
        self.calls += 1
        self.budget.deposit()
        started = time.monotonic()
        primary = asyncio.ensure_future(attempt(request))
        hedge: asyncio.Future[httpx.Response] | None = None
        try:
            await asyncio.wait((primary,), timeout=self.delay.current)
            if not primary.done() and self._take_hedge(deadline):
                hedge = asyncio.ensure_future(attempt(copy_of(request)))
                # Not a ``finally`` in the hedge: a task cancelled before its first step never
                # runs its body, and the slot would be lost.
                hedge.add_done_callback(self._give_slot_back)
                return await self._race(primary, hedge)
            response = await primary
            if not is_failure_status(response.status_code):
                self.delay.observe(time.monotonic() - started)
            return response
        finally:
            await _settle((primary, hedge))

    def snapshot(self) -> dict[str, Any]:
        """The hedging part of ``/debug/downstreams``."""
        return {
            "delay_ms": round(self.delay.current * 1000, 3),
            "calls": self.calls,
            "budget_balance": round(self.budget.balance, 3),
            "sent": sum(self.sent.values()),
            "results": dict(self.sent),
            "skipped": dict(self.skipped),
        }

    def _take_hedge(self, deadline: float) -> bool:
        """Whether to hedge now; if so, the hedge's bulkhead slot and budget token are taken."""
        if self.breaker.state is not BreakerState.CLOSED:
            reason = "breaker"
        elif deadline - time.monotonic() <= self.delay.current:
            reason = "deadline"  # a hedge with less time than its delay would rarely win
        elif not self.budget.has_token():
            reason = "budget"
        elif not self.bulkhead.try_acquire():
            reason = "bulkhead"
        else:
            self.budget.spend()
            return True
        self.skipped[reason] += 1
        self.instruments.hedge_skipped(reason)
        return False

    def _give_slot_back(self, _: asyncio.Future[httpx.Response]) -> None:
        self.bulkhead.release()

    async def _race(
        self, primary: asyncio.Future[httpx.Response], hedge: asyncio.Future[httpx.Response]
    ) -> httpx.Response:
        """The first usable answer; if neither is usable, the first attempt's outcome."""
        pending = {primary, hedge}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in (primary, hedge):  # the first attempt first when both ended at once
                if task in done and _usable(task):
                    self._count("won" if task is hedge else "lost")
                    return task.result()
        self._count("failed")
        return primary.result()

    def _count(self, result: str) -> None:
        self.sent[result] += 1
        self.instruments.hedged(result)


def copy_of(request: httpx.Request) -> httpx.Request:
    """The same request for a concurrent attempt: ``prepare`` and traces write into a request's
    headers and extensions, which httpcore reads while it sends."""
    return httpx.Request(
        request.method,
        request.url,
        headers=request.headers.copy(),
        content=request.content,
        extensions=dict(request.extensions),
    )


def _usable(task: asyncio.Future[httpx.Response]) -> bool:
    return (
        not task.cancelled()
        and task.exception() is None
        and not is_failure_status(task.result().status_code)
    )


async def _settle(tasks: tuple[asyncio.Future[httpx.Response] | None, ...]) -> None:
    """Cancel the attempts still running and wait for their clean-up (the pool repair runs in
    it); mark every outcome retrieved, so none is logged as never retrieved."""
    running = [task for task in tasks if task is not None and not task.done()]
    for still_running in running:
        still_running.cancel()
    if running:
        await asyncio.wait(running)
    for task in tasks:
        if task is not None and not task.cancelled():
            task.exception()
