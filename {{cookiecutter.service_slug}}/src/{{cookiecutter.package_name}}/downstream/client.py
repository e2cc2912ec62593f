"""One downstream: the call pipeline in front of its shared ``AsyncClient``.

deadline -> admission (breaker, bulkhead) -> retry loop -> per-attempt timeout -> httpx.

- Bodies are always read and the response closed before ``request`` returns, so a connection can
  never be left checked out; ``stream`` is an ``async with`` that always closes, and a stream
  held open too long or dropped unclosed is reported with the line that opened it.
- Each piece has one job elsewhere: ``admission`` lets a call in and settles it once,
  ``attempts`` sends it (deadline-capped timeouts, retries, a backstop past the deadline, the pool
  repaired after a cancellation), ``failures`` maps what went wrong to 502/503/504,
  ``instruments`` logs and counts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any, TypeVar

from pydantic import ValidationError

from . import views
from .admission import Admission
from .attempts import Attempts
from .breaker import BreakerState, CircuitBreaker, is_failure_status
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .cancellation import PoolRepair
from .concurrency_limit import AdaptiveLimit
from .config import DownstreamSettings, ObservabilitySettings
from .deadline import call_deadline
from .decoding import ModelT, json_body, not_the_model
from .errors import DownstreamTimeout
from .failures import for_status
from .health_probe import HealthProbe
from .hedging import Hedging
from .httplib import httpx
from .inflight import InFlightCalls, OpenStreams
from .instruments import Instruments
from .metrics import DownstreamMetrics
from .pool_internals import stats_reader
from .request_builder import RequestBuilder
from .retry import RetryPolicy
from .retry_tokens import RetryTokens
from .spans import NO_SPANS, Spans
from .streaming import open_stream
from .urls import DEFAULT_PORTS, PathBuilder

ResultT = TypeVar("ResultT")


def _as_is(response: httpx.Response) -> httpx.Response:
    return response


def adaptive_limit(settings: DownstreamSettings) -> AdaptiveLimit | None:
    bulkhead = settings.bulkhead
    if not bulkhead.adaptive:
        return None
    return AdaptiveLimit(bulkhead.min_concurrency, bulkhead.max_concurrency)


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
        spans: Spans = NO_SPANS,
    ) -> None:
        self.name = name
        self.settings = settings
        self.client = client
        self.deadline_header = deadline_header
        self.observability = observability or ObservabilitySettings()
        self.paths = PathBuilder(name, settings.base_url)
        self.requests = RequestBuilder(client)
        self.instruments = Instruments(name, self.observability, spans)
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
        # Who holds the pool, for the exhaustion event.
        self.busy: Callable[[], dict[str, Any]] = partial(views.busy, self)
        self.admission = Admission(
            name, self.breaker, self.bulkhead, self.instruments, self.busy, adaptive_limit(settings)
        )
        self.budget = RetryBudget(settings.retry)
        self.retry_tokens = RetryTokens(settings.retry)
        self.retry = RetryPolicy(
            name, settings.retry, self.budget, self.retry_tokens, self.instruments
        )
        self.repair = PoolRepair(client, self._pool_repaired)
        self.hedging = (
            Hedging(settings.hedge, self.breaker, self.bulkhead, self.instruments)
            if settings.hedge.enabled
            else None
        )
        self.attempts = Attempts(
            name,
            settings,
            client,
            deadline_header=deadline_header,
            budget=self.budget,
            tokens=self.retry_tokens,
            retry=self.retry,
            repair=self.repair,
            instruments=self.instruments,
            trace_pool_wait=self.observability.trace_pool_wait,
            busy=self.busy,
            hedging=self.hedging,
        )
        self.open_streams = OpenStreams()
        self.pool_stats = stats_reader(client)

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

    def stream(
        self,
        method: str,
        path: str,
        *,
        path_params: Mapping[str, object] | None = None,
        params: Mapping[str, str | int | float] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """A streamed response, closed when the ``async with`` block exits (one attempt, no
        retries); the bulkhead slot is held until then (``streaming``)."""
        return open_stream(
            self, method, path, path_params=path_params, params=params, headers=headers
        )

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
        await self.repair.close_unpooled(all_now=True)  # closing the pool skips those

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
            request = self.build_request(method, request_path, **options)
            response = await self.attempts.send(request, deadline, ticket.call)
            if is_failure_status(response.status_code):
                ticket.failed("error", status=response.status_code)
                raise for_status(self.name, response)
            result = read(response)  # a body that does not fit fails the call, too
            ticket.succeeded()
        except BaseException as exc:
            ticket.settle_error(exc)
            raise
        finally:
            ticket.release()
        return result

    def build_request(self, method: str, request_path: str, **options: Any) -> httpx.Request:
        """Build the httpx request and prove it stays on this downstream's origin and base path."""
        request = self.requests.build(method, request_path, **options)
        url = request.url
        self.paths.check_final(
            url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme), url.raw_path
        )
        return request

    def _pool_repaired(self, cause: str) -> None:
        self.instruments.repaired(cause, lambda: views.snapshot(self)["pool"])
