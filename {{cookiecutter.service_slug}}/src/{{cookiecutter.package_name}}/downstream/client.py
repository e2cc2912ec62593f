"""One downstream: the call pipeline in front of its shared ``AsyncClient``.

deadline -> bulkhead -> circuit breaker -> retry loop -> per-attempt timeout -> httpx.

- Bodies are always read and the response closed before ``request`` returns, so a connection can
  never be left checked out; ``stream`` is an ``async with`` that always closes, and a stream
  held open too long or dropped unclosed is reported with the line that opened it.
- Time is enforced with httpx's own timeouts, capped by what remains of the deadline, and a
  backstop cancels any attempt still running just after the deadline (waits httpx does not
  bound). What a cancellation breaks in httpcore's pool (#1093 and two more holes) is repaired
  the moment it happens (``cancellation.py``).
- Failures become ``DownstreamError`` subclasses that ``problems`` turns into 502/503/504.
- The hot path logs nothing above DEBUG; sheds and PoolTimeouts log ``downstream.pool.exhausted``
  at most once per configured interval, with the oldest calls in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import structlog

from .breaker import (
    BreakerOpenError,
    BreakerState,
    CircuitBreaker,
    is_failure_status,
)
from .budget import RetryBudget
from .bulkhead import Bulkhead, BulkheadFullError
from .cancellation import PoolRepair
from .config import DownstreamSettings, ObservabilitySettings
from .deadline import call_deadline
from .errors import (
    DownstreamBadGateway,
    DownstreamError,
    DownstreamTimeout,
    DownstreamUnavailable,
    UnsafeDownstreamPath,
)
from .h2_errors import H2_ERRORS, H2CheckedStream, as_http_error
from .httplib import httpx
from .inflight import InFlightCall, InFlightCalls, OpenStreams
from .metrics import DownstreamMetrics
from .pool_internals import client_pool, pool_stats
from .retry import RetryPolicy, is_idempotent, parse_retry_after
from .tracing import AttemptTrace
from .urls import DEFAULT_PORTS, PathBuilder

log = structlog.get_logger("downstream")

# How long after its deadline an attempt httpx has not ended is cancelled (see ``_backstop``).
# Long enough that event-loop lag under load never lets it beat httpx's own timeout at the
# deadline: at 0.1 s it did, and the cancellations it caused made the quick load test's slow
# phase miss its shed and /healthz p99 (630/130 ms vs 570/67 ms at 0.3 s).
BACKSTOP_GRACE_SECONDS = 0.3


class Downstream:
    """The only way route code talks to a downstream; get one with ``Depends``."""

    def __init__(
        self,
        name: str,
        settings: DownstreamSettings,
        client: httpx.AsyncClient,
        *,
        deadline_header: str,
        observability: ObservabilitySettings | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.client = client
        self.deadline_header = deadline_header
        self.observability = observability or ObservabilitySettings()
        self.paths = PathBuilder(name, settings.base_url)
        self.metrics = DownstreamMetrics(name)
        self.log = log.bind(downstream=name)  # bound once: a filtered-out debug() is a no-op
        self.bulkhead = Bulkhead(name, settings.bulkhead)
        self.breaker = CircuitBreaker(name, settings.breaker, on_state_change=self._breaker_changed)
        self.budget = RetryBudget(settings.retry)
        self.retry = RetryPolicy(name, settings.retry, self.budget, self.metrics)
        self.repair = PoolRepair(client, self._pool_repaired)
        self.in_flight = InFlightCalls()
        self.open_streams = OpenStreams()
        self.outcomes: Counter[str] = Counter()
        self.orphans_repaired = 0
        self.last_exhausted_log = float("-inf")
        self.exhausted_suppressed = 0
        timeouts = settings.timeouts
        self.full_timeout = httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
        ).as_dict()
        self.longest_timeout = max(timeouts.connect, timeouts.read, timeouts.write, timeouts.pool)
        # Traces tell a GOAWAY-refused HTTP/2 request from a processed one, and measure pool wait.
        self.trace_attempts = self.observability.trace_pool_wait or (
            settings.http2 and settings.base_url.startswith("https://")
        )

    # -- public API ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, object] | None = None,
        params: Mapping[str, str | int | float] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request through the whole pipeline; the response body is already read.

        4xx responses (other than 429) are returned for the caller to interpret; 5xx and 429
        after retries, timeouts and connection failures raise ``DownstreamError``.
        """
        method = method.upper()
        request_path = self.paths.build(path, path_params)
        now = time.monotonic()
        deadline = call_deadline(self.settings.deadline_seconds, now)
        if deadline <= now:
            self._count("timeout")
            raise DownstreamTimeout(self.name, "the request's deadline had already passed")
        probe, call = await self._admit(method, path)  # sheds and open breakers fail here, fast
        try:
            request = self._build_request(
                method, request_path, params=params, json=json, content=content, headers=headers
            )
            response = await self._send(request, deadline, call)
        except UnsafeDownstreamPath:
            self.breaker.record_cancelled(probe=probe)
            raise
        except DownstreamError as exc:
            self._record(probe, call, exc.reason, failed=True)
            raise
        except BaseException as exc:  # cancelled, or a bug: no verdict on the downstream
            self._abandoned(probe, exc)
            raise
        finally:
            self._release(call)
        if is_failure_status(response.status_code):
            self._record(probe, call, "error", failed=True)
            raise self._error_for_status(response)
        self._record(probe, call, "ok", failed=False)
        return response

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, object] | None = None,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streamed response, closed when the block exits (one attempt, no retries).

        The bulkhead slot is held until the block exits: a slow reader holds pool capacity,
        exactly as its connection does.
        """
        method = method.upper()
        request_path = self.paths.build(path, path_params)
        deadline = call_deadline(self.settings.deadline_seconds, time.monotonic())
        opened = self.open_streams.open(method, path, depth=3)
        try:
            probe, call = await self._admit(method, path)
            try:
                request = self._build_request(method, request_path, params=params, headers=headers)
                self._prepare_attempt(request, deadline)
                async with self._backstop(deadline):
                    response = await self._send_once(request)
            except httpx.HTTPError as exc:
                error = self._error_for_exception(exc)
                self._record(probe, call, error.reason, failed=True)
                self._release(call)
                raise error from None
            except BaseException as exc:
                self._abandoned(probe, exc)
                self._release(call)
                raise
            try:
                if is_failure_status(response.status_code):
                    self._record(probe, call, "error", failed=True)
                    raise self._error_for_status(response)
                self._record(probe, call, "ok", failed=False)
                yield response
            finally:
                try:
                    await self._close_checked(response)  # the block may end in a cancellation
                finally:
                    self._release(call)
        except GeneratorExit:  # the context was dropped unexited and collected
            self.metrics.leak("garbage_collected")
            log.warning(
                "downstream.response.leaked",
                downstream=self.name,
                kind="garbage_collected",
                **opened.describe(time.monotonic()),
            )
            raise
        finally:
            self.open_streams.close(opened)

    def snapshot(self) -> dict[str, Any]:
        """Pool, bulkhead and utilisation now (for logs, the monitor and /debug/downstreams)."""
        stats = pool_stats(client_pool(self.client))
        in_flight = self.bulkhead.in_flight
        queued = self.bulkhead.queued
        self.metrics.pool(stats, in_flight, queued)
        utilisation = max(
            in_flight / self.settings.bulkhead.max_concurrency,
            (stats.active + stats.connecting) / self.settings.limits.max_connections,
        )
        return {
            "pool": {
                "connecting": stats.connecting,
                "active": stats.active,
                "idle": stats.idle,
                "http2": stats.http2,
                "requests_active": stats.requests_active,
                "requests_queued": stats.requests_queued,
                "max_connections": self.settings.limits.max_connections,
            },
            "in_flight": in_flight,
            "queued": queued,
            "utilisation": round(utilisation, 3),
        }

    async def aclose(self, drain_seconds: float) -> None:
        """Wait (bounded) for calls in flight to finish, then close the pool."""
        give_up = time.monotonic() + drain_seconds
        # A shutdown-only poll: an Event would add work to every release on the hot path.
        while self.bulkhead.in_flight and time.monotonic() < give_up:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.bulkhead.in_flight:
            log.warning(
                "downstream.close.undrained",
                downstream=self.name,
                in_flight=self.bulkhead.in_flight,
                oldest_calls=self.in_flight.oldest(),
            )
        await self.client.aclose()

    # -- pipeline -----------------------------------------------------------------------------

    async def _admit(self, method: str, route: str) -> tuple[bool, InFlightCall]:
        """Bulkhead then breaker; returns (is this a half-open probe, the in-flight record).

        An open breaker refuses before the bulkhead is asked: otherwise calls would queue for
        slots held by calls hanging on the very downstream that opened it.
        """
        try:
            self.breaker.check_refusing()
        except BreakerOpenError as exc:
            raise self._breaker_refused(exc) from None
        try:
            await self.bulkhead.acquire()
        except BulkheadFullError as exc:
            self._count("shed")
            self._exhausted("bulkhead_" + exc.reason)
            raise DownstreamUnavailable(
                self.name,
                f"too many calls in flight to {self.name} ({exc.reason}); shed instead of queued",
                reason="shed",
                retry_after=exc.retry_after,
            ) from None
        try:
            probe = self.breaker.acquire()
        except BreakerOpenError as exc:  # it opened while this call waited for its slot
            self.bulkhead.release()
            raise self._breaker_refused(exc) from None
        return probe, self.in_flight.start(method, route)

    def _breaker_refused(self, exc: BreakerOpenError) -> DownstreamUnavailable:
        self._count("breaker_open")
        return DownstreamUnavailable(
            self.name,
            f"circuit breaker for {self.name} is {exc.state.value}",
            reason="breaker_open",
            retry_after=exc.retry_after,
        )

    def _release(self, call: InFlightCall) -> None:
        self.in_flight.finish(call)
        self.bulkhead.release()

    @staticmethod
    def _backstop(deadline: float) -> asyncio.Timeout:
        """End the attempt shortly after the deadline, whatever the client library waits on.

        httpx's own timeouts, capped at the deadline, get the first chance to end an attempt
        cleanly; this ends what they do not bound: an HTTP/2 stream-slot or read-lock wait (with
        httpcore 1.0.9 a downstream lowering MAX_CONCURRENT_STREAMS deadlocks the connection's
        reader), response headers or a body dripped a byte at a time. What the cancellation
        leaves in the pool is repaired by ``_send_once`` and ``_close_checked``.
        """
        return asyncio.timeout(deadline + BACKSTOP_GRACE_SECONDS - time.monotonic())

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        """One send; a cancelled or broken one has the pool checked for the damage it may leave."""
        try:
            response = await self.client.send(request, stream=True)
        except asyncio.CancelledError:
            self.repair.after_cancelled_send()
            raise
        except httpx.LocalProtocolError:
            self.repair.after_protocol_error()
            raise
        except H2_ERRORS as exc:
            raise as_http_error(exc, request) from exc
        if response.http_version == "HTTP/2" and isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = H2CheckedStream(response.stream, request)
        return response

    async def _close_checked(self, response: httpx.Response) -> None:
        """Close ``response``, then check a cancellation did not strand its request in the pool."""
        try:
            await response.aclose()
        finally:
            self.repair.release_if_stranded(response)

    def _pool_repaired(self, cause: str) -> None:
        self.orphans_repaired += 1
        self.metrics.orphans_repaired.inc()
        log.warning(
            "downstream.pool.orphan_connection",
            downstream=self.name,
            action="closed",
            cause=cause,
            pool=self.snapshot()["pool"],
        )

    async def _send(
        self, request: httpx.Request, deadline: float, call: InFlightCall
    ) -> httpx.Response:
        """The first attempt inline; tenacity only when its outcome may be retried."""
        self.budget.deposit()
        idempotent = is_idempotent(request.method, request.headers)
        traces: list[AttemptTrace] = []
        first: httpx.Response | BaseException
        try:
            first = await self._attempt(request, deadline, traces, call)
        except (httpx.HTTPError, TimeoutError) as exc:
            if self.retry.error_reason(exc, idempotent=idempotent, traces=traces) is None:
                raise self._error_for_failure(exc) from None
            first = exc
        else:
            if self.retry.response_reason(first, idempotent=idempotent) is None:
                return first
        return await self._retry(first, request, deadline, traces, call, idempotent=idempotent)

    async def _retry(
        self,
        first: httpx.Response | BaseException,
        request: httpx.Request,
        deadline: float,
        traces: list[AttemptTrace],
        call: InFlightCall,
        *,
        idempotent: bool,
    ) -> httpx.Response:
        retrying = self.retry.call(deadline=deadline, idempotent=idempotent, traces=traces)
        replay = [first]

        async def attempt() -> httpx.Response:
            if replay:  # tenacity's attempt 1 is the one already made
                outcome = replay.pop()
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome
            return await self._attempt(request, deadline, traces, call)

        try:
            response: httpx.Response = await retrying(attempt)
        except (httpx.HTTPError, TimeoutError) as exc:
            if retrying.stopped_by == "budget":
                raise self._budget_spent() from None
            raise self._error_for_failure(exc) from None
        if retrying.stopped_by == "budget":
            raise self._budget_spent()
        return response

    async def _attempt(
        self,
        request: httpx.Request,
        deadline: float,
        traces: list[AttemptTrace],
        call: InFlightCall,
    ) -> httpx.Response:
        call.attempt += 1
        self._prepare_attempt(request, deadline)
        trace = None
        if self.trace_attempts:
            trace = AttemptTrace()
            traces.append(trace)
            request.extensions["trace"] = trace
        async with self._backstop(deadline):
            response = await self._send_once(request)
            try:
                await response.aread()  # closes the response at the end of the body
            except BaseException:
                await self._close_checked(response)
                raise
        if trace is not None and trace.pool_wait is not None:
            self.metrics.pool_wait.observe(trace.pool_wait)
        self.log.debug(
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
        return response

    def _prepare_attempt(self, request: httpx.Request, deadline: float) -> None:
        """Cap this attempt's timeouts by the deadline and forward what remains downstream."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpx.TimeoutException("deadline reached before the attempt", request=request)
        if remaining >= self.longest_timeout:
            request.extensions["timeout"] = self.full_timeout
        else:
            timeouts = self.settings.timeouts
            request.extensions["timeout"] = {
                "connect": min(timeouts.connect, remaining),
                "read": min(timeouts.read, remaining),
                "write": min(timeouts.write, remaining),
                "pool": min(timeouts.pool, remaining),
            }
        request.headers[self.deadline_header] = str(int(remaining * 1000))

    def _build_request(self, method: str, request_path: str, **options: Any) -> httpx.Request:
        """Build the httpx request and prove it stays on this downstream's origin and base path."""
        request = self.client.build_request(method, request_path, **options)
        url = request.url
        self.paths.check_final(
            url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme), url.raw_path
        )
        return request

    # -- outcomes and errors ------------------------------------------------------------------

    def _count(self, reason: str) -> None:
        self.outcomes[reason] += 1
        self.metrics.calls[reason].inc()

    def _record(self, probe: bool, call: InFlightCall, reason: str, *, failed: bool) -> None:
        duration = time.monotonic() - call.started
        if failed:
            self.breaker.record_failure(duration, probe=probe)
        else:
            self.breaker.record_success(duration, probe=probe)
        self._count(reason)
        self.metrics.latency.observe(duration)

    def _abandoned(self, probe: bool, exc: BaseException) -> None:
        """A call ended without a verdict on the downstream; count the cancelled ones."""
        self.breaker.record_cancelled(probe=probe)
        if isinstance(exc, asyncio.CancelledError):
            self._count("cancelled")

    def _exhausted(self, cause: str) -> None:
        """Log ``downstream.pool.exhausted``: who holds the pool, at most once per interval."""
        now = time.monotonic()
        if now - self.last_exhausted_log < self.observability.exhausted_log_interval_seconds:
            self.exhausted_suppressed += 1
            return
        log.warning(
            "downstream.pool.exhausted",
            downstream=self.name,
            cause=cause,
            suppressed_since_last=self.exhausted_suppressed,
            oldest_calls=self.in_flight.oldest(),
            **self.snapshot(),
        )
        self.last_exhausted_log = now
        self.exhausted_suppressed = 0

    def _budget_spent(self) -> DownstreamUnavailable:
        return DownstreamUnavailable(
            self.name,
            f"retry budget for {self.name} is spent; not multiplying an outage",
            reason="retry_budget",
            retry_after=1.0,
        )

    def _error_for_status(self, response: httpx.Response) -> DownstreamError:
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            return DownstreamUnavailable(
                self.name,
                f"{self.name} is throttling this service (429)",
                reason="throttled",
                retry_after=1.0 if retry_after is None else retry_after,
            )
        return DownstreamBadGateway(self.name, f"{self.name} answered {status}")

    def _error_for_failure(self, exc: BaseException) -> DownstreamError:
        if isinstance(exc, httpx.HTTPError):
            return self._error_for_exception(exc)
        return DownstreamTimeout(
            self.name, f"{self.name} did not finish its response within the deadline"
        )

    def _error_for_exception(self, exc: httpx.HTTPError) -> DownstreamError:
        if isinstance(exc, httpx.PoolTimeout):
            self._exhausted("pool_timeout")
            return DownstreamUnavailable(
                self.name,
                f"no connection to {self.name} became free in time",
                reason="pool_exhausted",
                retry_after=1.0,
            )
        if isinstance(exc, httpx.TimeoutException):
            return DownstreamTimeout(self.name, f"{self.name} timed out ({type(exc).__name__})")
        if isinstance(exc, httpx.ConnectError):
            return DownstreamBadGateway(self.name, f"could not connect to {self.name}")
        return DownstreamBadGateway(
            self.name, f"{self.name} broke the connection ({type(exc).__name__})"
        )

    def _breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        self.metrics.transition(new.value)
        log.warning(
            "downstream.breaker.state_changed", downstream=name, old=old.value, new=new.value
        )
