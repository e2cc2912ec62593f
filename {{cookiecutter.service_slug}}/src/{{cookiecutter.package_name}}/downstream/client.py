"""One downstream: the call pipeline in front of its shared ``AsyncClient``.

deadline -> bulkhead -> circuit breaker -> retry loop -> per-attempt timeout -> httpx.

- Bodies are always read and the response closed before ``request`` returns, so a connection can
  never be left checked out; ``stream`` is an ``async with`` that always closes.
- Time is enforced with httpx's own timeouts, capped by what remains of the deadline. Nothing
  wraps pool acquisition in ``asyncio.wait_for``/``timeout``: cancelling a task while it waits on
  httpcore's pool leaks a connection forever (httpcore #1093). Only the body read, which runs
  after a connection is assigned, sits under ``asyncio.timeout``.
- Failures become ``DownstreamError`` subclasses that ``problems`` turns into 502/503/504.
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
    BreakerConfig,
    BreakerOpenError,
    BreakerState,
    CircuitBreaker,
    is_failure_status,
)
from .budget import RetryBudget, RetryBudgetConfig
from .bulkhead import Bulkhead, BulkheadConfig, BulkheadFullError
from .cancellation import CancellationSafeSender
from .config import DownstreamSettings
from .deadline import call_deadline
from .errors import (
    DownstreamBadGateway,
    DownstreamError,
    DownstreamTimeout,
    DownstreamUnavailable,
)
from .httplib import httpx
from .retry import RetryPolicy, is_idempotent, parse_retry_after
from .tracing import AttemptTrace
from .urls import DEFAULT_PORTS, PathBuilder

log = structlog.get_logger("downstream")


class Downstream:
    """The only way route code talks to a downstream; get one with ``Depends``."""

    def __init__(
        self,
        name: str,
        settings: DownstreamSettings,
        client: httpx.AsyncClient,
        *,
        deadline_header: str,
    ) -> None:
        self.name = name
        self.settings = settings
        self.client = client
        self.sender = CancellationSafeSender(client)
        self.deadline_header = deadline_header
        self.paths = PathBuilder(name, settings.base_url)
        self.bulkhead = Bulkhead(name, BulkheadConfig(**settings.bulkhead.model_dump()))
        self.breaker = CircuitBreaker(
            name,
            BreakerConfig(**settings.breaker.model_dump()),
            on_state_change=log_breaker_change,
        )
        self.budget = RetryBudget(
            RetryBudgetConfig(
                ratio=settings.retry.budget_ratio,
                min_retries_per_second=settings.retry.budget_min_per_second,
                ttl_seconds=settings.retry.budget_window_seconds,
            )
        )
        self.retry = RetryPolicy(name, settings.retry, self.budget)
        self.outcomes: Counter[str] = Counter()
        timeouts = settings.timeouts
        self.full_timeout = httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
        )
        self.longest_timeout = max(timeouts.connect, timeouts.read, timeouts.write, timeouts.pool)
        # Traces are needed to tell a GOAWAY-refused HTTP/2 request from a processed one.
        self.trace_attempts = settings.http2 and settings.base_url.startswith("https://")

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
        request = self._build_request(
            method, path, path_params, params=params, json=json, content=content, headers=headers
        )
        now = time.monotonic()
        deadline = call_deadline(self.settings.deadline_seconds, now)
        if deadline <= now:
            self.outcomes["timeout"] += 1
            raise DownstreamTimeout(self.name, "the request's deadline had already passed")
        async with self._admitted() as probe:
            started = time.monotonic()
            try:
                response = await self._send_with_retries(request, deadline)
            except DownstreamError as exc:
                self.breaker.record_failure(time.monotonic() - started, probe=probe)
                self.outcomes[exc.reason] += 1
                raise
            except BaseException:  # cancelled, or a bug: no verdict on the downstream
                self.breaker.record_cancelled(probe=probe)
                raise
            duration = time.monotonic() - started
            if is_failure_status(response.status_code):
                self.breaker.record_failure(duration, probe=probe)
                self.outcomes["error"] += 1
                raise self._error_for_status(response)
            self.breaker.record_success(duration, probe=probe)
            self.outcomes["ok"] += 1
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
        request = self._build_request(method, path, path_params, params=params, headers=headers)
        deadline = call_deadline(self.settings.deadline_seconds, time.monotonic())
        async with self._admitted() as probe:
            started = time.monotonic()
            try:
                self._prepare_attempt(request, deadline)
                response = await self.sender.send(request)
            except httpx.HTTPError as exc:
                self.breaker.record_failure(time.monotonic() - started, probe=probe)
                raise self._error_for_exception(exc) from None
            except BaseException:
                self.breaker.record_cancelled(probe=probe)
                raise
            try:
                if is_failure_status(response.status_code):
                    self.breaker.record_failure(time.monotonic() - started, probe=probe)
                    raise self._error_for_status(response)
                self.breaker.record_success(time.monotonic() - started, probe=probe)
                yield response
            finally:
                await response.aclose()

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
            )
        await self.client.aclose()

    # -- pipeline -----------------------------------------------------------------------------

    @asynccontextmanager
    async def _admitted(self) -> AsyncIterator[bool]:
        """Bulkhead then breaker; yields whether this call is a half-open probe."""
        try:
            await self.bulkhead.acquire()
        except BulkheadFullError as exc:
            self.outcomes["shed"] += 1
            raise DownstreamUnavailable(
                self.name,
                f"too many calls in flight to {self.name} ({exc.reason}); shed instead of queued",
                reason="shed",
                retry_after=exc.retry_after,
            ) from None
        slot_follows_abandoned_send = False
        try:
            try:
                probe = self.breaker.acquire()
            except BreakerOpenError as exc:
                self.outcomes["open"] += 1
                raise DownstreamUnavailable(
                    self.name,
                    f"circuit breaker for {self.name} is {exc.state.value}",
                    reason="breaker_open",
                    retry_after=exc.retry_after,
                ) from None
            try:
                yield probe
            except BaseException:
                # A cancelled caller's send may still hold a connection (see cancellation.py):
                # its slot is released when that send ends, or the pool would be over-admitted.
                abandoned = self.sender.take_abandoned()
                if abandoned is not None:
                    abandoned.add_done_callback(self._release_slot)
                    slot_follows_abandoned_send = True
                raise
        finally:
            if not slot_follows_abandoned_send:
                self.bulkhead.release()

    def _release_slot(self, _send: object) -> None:
        self.bulkhead.release()

    async def _send_with_retries(self, request: httpx.Request, deadline: float) -> httpx.Response:
        self.budget.deposit()
        traces: list[AttemptTrace] = []
        retrying = self.retry.call(
            deadline=deadline,
            idempotent=is_idempotent(request.method, request.headers),
            traces=traces,
        )
        try:
            response: httpx.Response = await retrying(self._attempt, request, deadline, traces)
        except (httpx.HTTPError, TimeoutError) as exc:
            if retrying.stopped_by == "budget":
                raise self._budget_spent() from None
            if isinstance(exc, TimeoutError):
                raise DownstreamTimeout(
                    self.name, f"{self.name} did not finish its response within the deadline"
                ) from None
            raise self._error_for_exception(exc) from None
        if retrying.stopped_by == "budget":
            raise self._budget_spent()
        return response

    def _budget_spent(self) -> DownstreamUnavailable:
        return DownstreamUnavailable(
            self.name,
            f"retry budget for {self.name} is spent; not multiplying an outage",
            reason="retry_budget",
            retry_after=1.0,
        )

    async def _attempt(
        self, request: httpx.Request, deadline: float, traces: list[AttemptTrace]
    ) -> httpx.Response:
        self._prepare_attempt(request, deadline)
        if self.trace_attempts:
            trace = AttemptTrace()
            traces.append(trace)
            request.extensions["trace"] = trace
        response = await self.sender.send(request)
        try:
            # The connection is assigned by now, so cancelling here cannot orphan it.
            async with asyncio.timeout(deadline - time.monotonic()):
                await response.aread()
        finally:
            await response.aclose()
        return response

    def _prepare_attempt(self, request: httpx.Request, deadline: float) -> None:
        """Cap this attempt's timeouts by the deadline and forward what remains downstream."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpx.TimeoutException("deadline reached before the attempt", request=request)
        timeout = (
            self.full_timeout
            if remaining >= self.longest_timeout
            else httpx.Timeout(
                connect=min(self.settings.timeouts.connect, remaining),
                read=min(self.settings.timeouts.read, remaining),
                write=min(self.settings.timeouts.write, remaining),
                pool=min(self.settings.timeouts.pool, remaining),
            )
        )
        request.extensions["timeout"] = timeout.as_dict()
        request.headers[self.deadline_header] = str(int(remaining * 1000))

    def _build_request(
        self,
        method: str,
        path: str,
        path_params: Mapping[str, object] | None,
        **options: Any,
    ) -> httpx.Request:
        """Build the request and prove it stays on this downstream's origin and base path."""
        request_path = self.paths.build(path, dict(path_params) if path_params else None)
        request = self.client.build_request(method.upper(), request_path, **options)
        url = request.url
        self.paths.check_final(
            url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme), url.raw_path
        )
        return request

    # -- error mapping ------------------------------------------------------------------------

    def _error_for_status(self, response: httpx.Response) -> DownstreamError:
        status = response.status_code
        if status == 429:
            return DownstreamUnavailable(
                self.name,
                f"{self.name} is throttling this service (429)",
                reason="throttled",
                retry_after=parse_retry_after_or(response, 1.0),
            )
        return DownstreamBadGateway(self.name, f"{self.name} answered {status}")

    def _error_for_exception(self, exc: httpx.HTTPError) -> DownstreamError:
        if isinstance(exc, httpx.PoolTimeout):
            log.warning("downstream.pool.exhausted", downstream=self.name, cause="pool_timeout")
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


def parse_retry_after_or(response: httpx.Response, default: float) -> float:
    value = parse_retry_after(response.headers.get("retry-after"))
    return default if value is None else value


def log_breaker_change(name: str, old: BreakerState, new: BreakerState) -> None:
    log.warning("downstream.breaker.state_changed", downstream=name, old=old.value, new=new.value)
