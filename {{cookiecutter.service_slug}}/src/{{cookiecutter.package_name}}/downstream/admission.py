"""Admission: a call is let in by the breaker and the bulkhead, and settles its ticket once.

The shape of Netflix concurrency-limits' ``Limiter.acquire()`` returning a ``Listener``:
``request`` and ``stream`` share it, and however a call ends (an answer, a failure, a
cancellation), one verdict reaches the breaker and the outcome counters, and one release
frees the bulkhead slot. Later verdicts and releases are no-ops, so no path can settle twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .breaker import BreakerOpenError, CircuitBreaker
from .bulkhead import Bulkhead, BulkheadFullError
from .concurrency_limit import AdaptiveLimit
from .errors import DownstreamError
from .failures import breaker_refused, shed
from .inflight import InFlightCall, InFlightCalls
from .instruments import Instruments
from .spans import CallSpan

#: Answers that say the downstream is over its capacity: like a timeout, they narrow an adaptive
#: limit (other failures are no sample: an instant error would look like a fast downstream).
OVERLOAD_STATUSES = frozenset({429, 503})


class Ticket:
    """One admitted call: give it a verdict (or abandon it), then release it."""

    __slots__ = ("admission", "call", "probe", "released", "settled", "span")

    def __init__(
        self, admission: Admission, call: InFlightCall, probe: int, span: CallSpan
    ) -> None:
        self.admission = admission
        self.call = call
        self.probe = probe  # the breaker's half-open permit, or NOT_A_PROBE
        self.span = span
        self.settled = False
        self.released = False

    def succeeded(self) -> None:
        self._verdict("ok", failed=False)

    def failed(self, reason: str, *, status: int | None = None) -> None:
        overloaded = reason == "timeout" or status in OVERLOAD_STATUSES
        self._verdict(reason, failed=True, overloaded=overloaded)

    def settle_error(self, exc: BaseException) -> None:
        """The call raised ``exc``: a downstream's failure counts against it, a 404 for it; a
        cancellation, a refused path or a bug in the caller is no verdict on the downstream."""
        self.span.failed(exc)
        if isinstance(exc, DownstreamError) and exc.verdict != "none":
            if exc.verdict == "failed":
                self.failed(exc.reason)
            else:
                self.succeeded()
            return
        if self.settled:
            return
        self.settled = True
        self.admission.breaker.record_cancelled(probe=self.probe)
        if isinstance(exc, asyncio.CancelledError):
            self.admission.instruments.outcome("cancelled")

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission.in_flight.finish(self.call)
            self.admission.bulkhead.release()
            self.span.end()

    def _verdict(self, reason: str, *, failed: bool, overloaded: bool = False) -> None:
        if self.settled:
            return
        self.settled = True
        admission = self.admission
        duration = time.monotonic() - self.call.started
        if failed:
            admission.breaker.record_failure(duration, probe=self.probe)
        else:
            admission.breaker.record_success(duration, probe=self.probe)
        admission.instruments.outcome(reason, duration)
        self.span.verdict(reason)
        limit = admission.limit
        if limit is not None and (overloaded or not failed):
            admission.sample(limit, duration if not failed else None)


class Admission:
    """Breaker first, then bulkhead: an open breaker refuses before anything queues, or calls
    would wait for slots held by calls hanging on the very downstream that opened it."""

    def __init__(
        self,
        name: str,
        breaker: CircuitBreaker,
        bulkhead: Bulkhead,
        instruments: Instruments,
        describe_pool: Callable[[], dict[str, Any]],
        limit: AdaptiveLimit | None = None,
    ) -> None:
        self.name = name
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.instruments = instruments
        self.describe_pool = describe_pool
        self.in_flight = InFlightCalls()
        self.limit = limit
        instruments.metrics.concurrency_limit.set(bulkhead.limit)

    async def admit(self, method: str, route: str) -> Ticket:
        """A ticket, or ``DownstreamUnavailable`` (shed, breaker open) before any I/O."""
        span = self.instruments.spans.call(self.name, method, route)
        try:
            self.breaker.check_refusing()
        except BreakerOpenError as exc:
            raise self._refused(exc, span) from None
        try:
            await self.bulkhead.acquire()
        except BulkheadFullError as exc:
            self.instruments.outcome("shed")
            cause = "bulkhead_" + exc.reason
            self.instruments.exhausted(cause, self.describe_pool)
            error = shed(self.name, exc)
            span.refused(cause, error)
            raise error from None
        except BaseException as exc:  # cancelled while queued for a slot
            span.failed(exc)
            span.end()
            raise
        try:
            probe = self.breaker.acquire()
        except BreakerOpenError as exc:  # it opened while this call waited for its slot
            self.bulkhead.release()
            raise self._refused(exc, span) from None
        span.admitted(self.breaker)
        return Ticket(self, self.in_flight.start(method, route), probe, span)

    def sample(self, limit: AdaptiveLimit, rtt: float | None) -> None:
        """Feed the adaptive limit an answer's RTT, or a drop (``None``); resize if it moved."""
        in_flight = self.bulkhead.in_flight
        moved = limit.on_drop(in_flight) if rtt is None else limit.on_sample(rtt, in_flight)
        if moved is not None:
            self.bulkhead.set_limit(moved)
            self.instruments.limit_changed(limit.snapshot())

    def _refused(self, exc: BreakerOpenError, span: CallSpan) -> DownstreamError:
        self.instruments.outcome("breaker_open")
        error = breaker_refused(self.name, exc)
        span.refused("breaker_open", error)
        return error
