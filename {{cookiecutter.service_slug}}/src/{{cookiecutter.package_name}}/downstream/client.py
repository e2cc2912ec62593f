"""One downstream: the call pipeline in front of its shared ``AsyncClient``.

deadline -> admission (breaker, bulkhead) -> retry loop -> per-attempt timeout -> httpx.

- Bodies are always read and the response closed before ``request`` returns, so a connection can
  never be left checked out; ``stream`` is an ``async with`` that always closes, and a stream
  held open too long or dropped unclosed is reported with the line that opened it.
- Time is enforced with httpx's own timeouts, capped by what remains of the deadline, and a
  backstop cancels any attempt still running just after the deadline (waits httpx does not
  bound). What a cancellation breaks in httpcore's pool (#1093 and two more holes) is repaired
  the moment it happens (``cancellation.py``).
- Each piece has one job elsewhere: ``admission`` lets a call in and settles it once,
  ``failures`` maps what went wrong to 502/503/504, ``instruments`` logs and counts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any, TypeVar

from pydantic import ValidationError

from .admission import Admission, Ticket
from .bodies import UNMAPPED_ERRORS, CheckedBody, as_http_error
from .breaker import BreakerState, CircuitBreaker, is_failure_status
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .cancellation import PoolRepair
from .config import DownstreamSettings, ObservabilitySettings
from .deadline import call_deadline
from .decoding import ModelT, json_body, not_the_model
from .errors import DownstreamError, DownstreamTimeout
from .failures import budget_spent, for_exception, for_status
from .health_probe import HealthProbe
from .httplib import httpx
from .inflight import InFlightCall, InFlightCalls, OpenStreams
from .instruments import Instruments
from .metrics import DownstreamMetrics
from .pool_internals import client_pool, expire_closed_idle_http2, pool_stats
from .retry import RetryPolicy, is_idempotent
from .tracing import AttemptTrace
from .urls import DEFAULT_PORTS, PathBuilder

# How long after its deadline an attempt httpx has not ended is cancelled (see ``_backstop``).
# Long enough that event-loop lag under load never lets it beat httpx's own timeout at the
# deadline: at 0.1 s it did, and the cancellations it caused made the quick load test's slow
# phase miss its shed and /healthz p99 (630/130 ms vs 570/67 ms at 0.3 s).
BACKSTOP_GRACE_SECONDS = 0.3

ResultT = TypeVar("ResultT")


def _as_is(response: httpx.Response) -> httpx.Response:
    return response


def _call_later(delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(delay, callback)


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
        self.instruments = Instruments(name, self.observability)
        self.bulkhead = Bulkhead(name, settings.bulkhead)
        self.breaker = CircuitBreaker(
            name,
            settings.breaker,
            on_state_change=self._breaker_changed,
            schedule=_call_later,  # open -> half-open when the period ends, traffic or not
        )
        breaker = settings.breaker
        self.health_probe = (
            HealthProbe(
                self.breaker,
                lambda: self.request("GET", breaker.probe_path),
                most=breaker.half_open_calls,
            )
            if breaker.probe_path
            else None
        )
        self.admission = Admission(name, self.breaker, self.bulkhead, self.instruments, self.busy)
        self.budget = RetryBudget(settings.retry)
        self.retry = RetryPolicy(name, settings.retry, self.budget, self.instruments)
        self.repair = PoolRepair(client, self._pool_repaired)
        self.http2_pool = client_pool(client) if settings.http2 else None
        self.open_streams = OpenStreams()
        timeouts = settings.timeouts
        self.full_timeout = httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
        ).as_dict()
        self.longest_timeout = max(timeouts.connect, timeouts.read, timeouts.write, timeouts.pool)
        # Traces tell a GOAWAY-refused HTTP/2 request from a processed one, and measure pool wait.
        self.trace_attempts = self.observability.trace_pool_wait or (
            settings.http2 and settings.base_url.startswith("https://")
        )

    @property
    def metrics(self) -> DownstreamMetrics:
        return self.instruments.metrics

    @property
    def outcomes(self) -> Counter[str]:
        return self.instruments.outcomes

    @property
    def orphans_repaired(self) -> int:
        return self.instruments.orphans_repaired

    @property
    def in_flight(self) -> InFlightCalls:
        return self.admission.in_flight

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
        options = {"params": params, "json": json, "content": content, "headers": headers}
        return await self._call(method, path, path_params, options, _as_is)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        model: type[ModelT],
        path_params: Mapping[str, object] | None = None,
        params: Mapping[str, str | int | float] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> ModelT:
        """The answer's JSON body as a validated ``model``.

        A body that is not JSON or does not fit is ``DownstreamBadBody`` (502), a failure for
        the breaker; a 404 is ``DownstreamNotFound``, any other 4xx ``DownstreamRejected``.
        """
        options = {"params": params, "json": json, "headers": headers}

        def read(answer: httpx.Response) -> ModelT:
            body = json_body(self.name, answer)
            try:
                return model.model_validate_json(body)
            except ValidationError as exc:
                raise not_the_model(self.name, model, exc) from None

        return await self._call(method, path, path_params, options, read)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def get_json(self, path: str, *, model: type[ModelT], **kwargs: Any) -> ModelT:
        return await self.request_json("GET", path, model=model, **kwargs)

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
        exactly as its connection does. The verdict is the response head's.
        """
        method = method.upper()
        request_path = self.paths.build(path, path_params)
        deadline = call_deadline(self.settings.deadline_seconds, time.monotonic())
        opened = self.open_streams.open(method, path, depth=3)
        try:
            ticket = await self.admission.admit(method, path)
            try:
                request = self._build_request(method, request_path, params=params, headers=headers)
                self._prepare_attempt(request, deadline)
                try:
                    async with self._backstop(deadline):
                        response = await self._send_once(request, None)
                except (httpx.HTTPError, TimeoutError) as exc:
                    raise self._failure(exc) from None
                try:
                    self._judge(ticket, response)
                    yield response
                finally:
                    await self._close_checked(response)  # the block may end in a cancellation
            except BaseException as exc:
                ticket.settle_error(exc)  # a no-op once the head was judged
                raise
            finally:
                ticket.release()
        except GeneratorExit:  # the context was dropped unexited and collected
            self.instruments.leaked("garbage_collected", opened)
            raise
        finally:
            self.open_streams.close(opened)

    def busy(self) -> dict[str, Any]:
        """The snapshot and the oldest calls: who holds the pool, for the exhaustion event."""
        return {"oldest_calls": self.in_flight.oldest(), **self.snapshot()}

    def snapshot(self) -> dict[str, Any]:
        """Pool, bulkhead and utilisation now (for logs, the monitor and the debug view)."""
        stats = pool_stats(client_pool(self.client))
        in_flight = self.bulkhead.in_flight
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
            "queued": self.bulkhead.queued,
            "utilisation": round(utilisation, 3),
        }

    def update_gauges(self) -> None:
        """Refresh the pool gauges (the monitor calls this once a tick)."""
        stats = pool_stats(client_pool(self.client))
        self.metrics.pool(stats, self.bulkhead.in_flight, self.bulkhead.queued)

    def describe(self) -> dict[str, Any]:
        """Everything ``/debug/downstreams`` shows for this downstream; secrets masked."""
        return {
            **self.busy(),
            "bulkhead": {
                "in_flight": self.bulkhead.in_flight,
                "queued": self.bulkhead.queued,
                "shed": self.bulkhead.shed_count,
            },
            "open_streams": len(self.open_streams.streams),
            "leaked_responses": self.open_streams.leaks_reported,
            "orphans_repaired": self.orphans_repaired,
            "breaker": asdict(self.breaker.snapshot()),
            "retry_budget": {
                "balance": self.budget.balance(),
                "exhausted": self.budget.exhausted_count,
                "retries_by_reason": dict(self.retry.retries_by_reason),
            },
            "outcomes": dict(self.outcomes),
            "config": self.settings.model_dump(mode="json"),
        }

    async def aclose(self, drain_seconds: float) -> None:
        """Wait (bounded) for calls in flight to finish, then close the pool."""
        if self.health_probe is not None:
            await self.health_probe.aclose()
        give_up = time.monotonic() + drain_seconds
        # A shutdown-only poll: an Event would add work to every release on the hot path.
        while self.bulkhead.in_flight and time.monotonic() < give_up:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.bulkhead.in_flight:
            self.instruments.undrained(self.bulkhead.in_flight, self.in_flight.oldest())
        await self.client.aclose()

    # -- pipeline -----------------------------------------------------------------------------

    def _breaker_changed(self, name: str, old: BreakerState, new: BreakerState) -> None:
        self.instruments.breaker_changed(name, old, new)
        if new is BreakerState.HALF_OPEN and self.health_probe is not None:
            self.health_probe.start()

    async def _call(
        self,
        method: str,
        path: str,
        path_params: Mapping[str, object] | None,
        options: dict[str, Any],
        read: Callable[[httpx.Response], ResultT],
    ) -> ResultT:
        """Admit, send with retries, judge the answer and ``read`` it, settling the ticket once."""
        method = method.upper()
        request_path = self.paths.build(path, path_params)
        now = time.monotonic()
        deadline = call_deadline(self.settings.deadline_seconds, now)
        if deadline <= now:
            self.instruments.outcome("timeout")
            raise DownstreamTimeout(self.name, "the request's deadline had already passed")
        ticket = await self.admission.admit(method, path)  # sheds and open breakers fail here
        try:
            request = self._build_request(method, request_path, **options)
            response = await self._send(request, deadline, ticket.call)
            if is_failure_status(response.status_code):
                ticket.failed("error")
                raise for_status(self.name, response)
            result = read(response)  # a body that does not fit fails the call, too
            ticket.succeeded()
        except BaseException as exc:
            ticket.settle_error(exc)
            raise
        finally:
            ticket.release()
        return result

    def _judge(self, ticket: Ticket, response: httpx.Response) -> None:
        """A stream's verdict, on its head: 5xx and 429 fail, any other status is an answer."""
        if is_failure_status(response.status_code):
            ticket.failed("error")
            raise for_status(self.name, response)
        ticket.succeeded()

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

    async def _send_once(self, request: httpx.Request, max_bytes: int | None) -> httpx.Response:
        """One send; a cancelled or broken one has the pool checked for the damage it may leave.
        The body is read through ``CheckedBody``: at most ``max_bytes``, h2's errors mapped."""
        if self.http2_pool is not None:
            expire_closed_idle_http2(self.http2_pool)
        try:
            response = await self.client.send(request, stream=True)
        except asyncio.CancelledError:
            self.repair.after_cancelled_send()
            raise
        except httpx.LocalProtocolError:
            self.repair.after_protocol_error()
            raise
        except UNMAPPED_ERRORS as exc:
            raise as_http_error(exc, request) from exc
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)  # an AsyncClient's response
        response.stream = CheckedBody(stream, request, max_bytes)
        return response

    async def _close_checked(self, response: httpx.Response) -> None:
        """Close ``response``, then check a cancellation did not strand its request in the pool."""
        try:
            await response.aclose()
        finally:
            self.repair.release_if_stranded(response)

    def _pool_repaired(self, cause: str) -> None:
        self.instruments.repaired(cause, self.snapshot()["pool"])

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
                raise self._failure(exc) from None
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
                raise budget_spent(self.name) from None
            raise self._failure(exc) from None
        if retrying.stopped_by == "budget":
            raise budget_spent(self.name)
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
            response = await self._send_once(request, self.settings.max_body_bytes)
            try:
                await response.aread()  # closes the response at the end of the body
            except BaseException:
                await self._close_checked(response)
                raise
        self.instruments.attempt(request, call, response, trace)
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

    def _failure(self, exc: BaseException) -> DownstreamError:
        error = for_exception(self.name, exc)
        if error.reason == "pool_exhausted":
            self.instruments.exhausted("pool_timeout", self.busy)
        return error
