"""The one place a downstream's logs and metrics hang off.

The pipeline calls these hooks and never structlog or prometheus_client itself, so what is
recorded, and how often a failing downstream may write a line, is decided here (the shape of
stamina's instrumentation hooks). Per-call events on failure paths go through a ``Throttle``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import structlog

from .breaker import BreakerState
from .config import ObservabilitySettings
from .httplib import httpx
from .inflight import InFlightCall, OpenStream
from .metrics import DownstreamMetrics
from .spans import NO_SPANS, Spans
from .throttle import Throttle
from .tracing import AttemptTrace

log = structlog.get_logger("downstream")


class Instruments:
    """Counts, metrics and events of one downstream."""

    def __init__(
        self, name: str, observability: ObservabilitySettings, spans: Spans = NO_SPANS
    ) -> None:
        self.name = name
        self.spans = spans
        self.metrics = DownstreamMetrics(name)
        self.outcomes: Counter[str] = Counter()
        self.orphans_repaired = 0
        self.debug_log = log.bind(downstream=name)  # bound once: a filtered-out debug() is a no-op
        interval = observability.failure_log_interval_seconds
        self.exhausted_throttle = Throttle(interval)
        self.retry_throttle = Throttle(interval)
        self.budget_throttle = Throttle(interval)
        self.tokens_throttle = Throttle(interval)
        self.leak_throttle = Throttle(interval)
        self.repair_throttle = Throttle(interval)
        self.limit_throttle = Throttle(interval)

    def outcome(self, reason: str, duration: float | None = None) -> None:
        self.outcomes[reason] += 1
        self.metrics.calls[reason].inc()
        if duration is not None:
            self.metrics.latency.observe(duration)

    def exhausted(self, cause: str, describe: Callable[[], dict[str, Any]]) -> None:
        """``downstream.pool.exhausted``: who holds the pool, at most once per interval."""
        suppressed = self.exhausted_throttle.take()
        if suppressed is not None:
            log.warning(
                "downstream.pool.exhausted",
                downstream=self.name,
                cause=cause,
                suppressed_since_last=suppressed,
                **describe(),
            )

    def attempt(
        self,
        request: httpx.Request,
        call: InFlightCall,
        response: httpx.Response,
        trace: AttemptTrace | None,
    ) -> None:
        if trace is not None and trace.pool_wait is not None:
            self.metrics.pool_wait.observe(trace.pool_wait)
        self.debug_log.debug(
            "downstream.request",
            method=request.method,
            route=call.route,
            status=response.status_code,
            attempt=call.attempt,
            duration=round(time.monotonic() - call.started, 6),
            pool_wait=None if trace is None else trace.pool_wait,
            new_connection=None if trace is None else trace.connected,
            http_version=response.http_version,
        )

    def repaired(self, cause: str, describe_pool: Callable[[], dict[str, Any]]) -> None:
        """A cancelled call's connection was closed: counted always, logged at most once per
        interval (cancellations come one per call while a downstream fails)."""
        self.orphans_repaired += 1
        self.metrics.orphans_repaired.inc()
        suppressed = self.repair_throttle.take()
        if suppressed is not None:
            log.warning(
                "downstream.pool.orphan_connection",
                downstream=self.name,
                action="closed",
                cause=cause,
                suppressed_since_last=suppressed,
                pool=describe_pool(),
            )

    def leaked(self, kind: str, stream: OpenStream) -> None:
        self.metrics.leak(kind)
        details = stream.describe(time.monotonic())
        self._throttled(self.leak_throttle, "downstream.response.leaked", kind=kind, **details)

    def retried(self, reason: str, attempt: int, delay: float) -> None:
        """A retry is about to sleep: counted always, logged at most once per interval."""
        self.metrics.retry(reason)
        self.spans.retry(reason, attempt, delay)
        fields = {"attempt": attempt, "reason": reason, "delay": round(delay, 4)}
        self._throttled(self.retry_throttle, "downstream.retry", level=logging.INFO, **fields)

    def budget_exhausted(self) -> None:
        self.metrics.budget_exhausted.inc()
        self._throttled(self.budget_throttle, "downstream.retry.budget_exhausted")

    def retry_throttled(self) -> None:
        self.metrics.retry_throttled.inc()
        self._throttled(self.tokens_throttle, "downstream.retry.throttled")

    def _throttled(
        self, throttle: Throttle, event: str, *, level: int = logging.WARNING, **fields: Any
    ) -> None:
        suppressed = throttle.take()
        if suppressed is not None:
            log.log(
                level,
                event,
                downstream=self.name,
                suppressed_since_last=suppressed,
                **fields,
            )

    def limit_changed(self, state: dict[str, Any]) -> None:
        """The adaptive limit moved (at most once a window): the gauge always, a line at most
        once per interval."""
        self.metrics.concurrency_limit.set(state["limit"])
        event = "downstream.bulkhead.limit_changed"
        self._throttled(self.limit_throttle, event, level=logging.INFO, **state)

    def hedged(self, result: str) -> None:
        """A hedge was sent and the race ended: ``won`` (the hedge), ``lost`` or ``failed``."""
        self.metrics.hedges[result].inc()

    def hedge_skipped(self, reason: str) -> None:
        """A slow call was not hedged; counted, never logged (it can happen on every call)."""
        self.metrics.hedges_skipped[reason].inc()

    def undrained(self, in_flight: int, oldest_calls: list[dict[str, Any]]) -> None:
        log.warning(
            "downstream.close.undrained",
            downstream=self.name,
            in_flight=in_flight,
            oldest_calls=oldest_calls,
        )

    def breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        self.metrics.transition(new.value)
        log.warning(
            "downstream.breaker.state_changed", downstream=name, old=old.value, new=new.value
        )
