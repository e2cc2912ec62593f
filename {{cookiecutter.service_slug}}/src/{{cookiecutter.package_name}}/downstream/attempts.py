"""A call's attempts: the first inline, retries through tenacity, every one bounded.

Each attempt has its httpx timeouts capped by what remains of the deadline (the remainder is
forwarded downstream in the deadline header) and a backstop that cancels what httpx does not
bound; its body is read through ``CheckedBody``; what a cancellation or a protocol error leaves in
httpcore's pool is repaired at once (``cancellation.PoolRepair``). ``Downstream`` admits the call
and judges the answer; this only sends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from .aiohttp_transport import AiohttpTransport
from .bodies import UNMAPPED_ERRORS, CheckedBody, as_http_error
from .breaker import is_failure_status
from .budget import RetryBudget
from .cancellation import PoolRepair
from .config import DownstreamSettings
from .errors import DownstreamError
from .failures import budget_spent, for_exception
from .hedging import Hedging
from .httplib import httpx
from .inflight import InFlightCall
from .instruments import Instruments
from .pool_internals import client_pool, client_transport, expire_closed_idle_http2
from .retry import RetryPolicy, is_idempotent
from .retry_tokens import DOWNSTREAM_FAILURES, RetryTokens
from .tracing import AttemptTrace

# How long after its deadline an attempt httpx has not ended is cancelled (see ``backstop``).
# Long enough that event-loop lag under load never lets it beat httpx's own timeout at the
# deadline: at 0.1 s it did, and the cancellations it caused made the quick load test's slow
# phase miss its shed and /healthz p99 (630/130 ms vs 570/67 ms at 0.3 s).
BACKSTOP_GRACE_SECONDS = 0.3
# A call whose retry was refused answers 503 retry_budget, by the budget or the tokens alike.
RETRIES_REFUSED = frozenset({"budget", "throttled"})


class Attempts:
    """Sends one downstream's requests; ``Downstream`` owns one."""

    def __init__(
        self,
        name: str,
        settings: DownstreamSettings,
        client: httpx.AsyncClient,
        *,
        deadline_header: str,
        budget: RetryBudget,
        tokens: RetryTokens,
        retry: RetryPolicy,
        repair: PoolRepair,
        instruments: Instruments,
        trace_pool_wait: bool,
        busy: Callable[[], dict[str, Any]],
        hedging: Hedging | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.deadline_header = deadline_header
        self.budget = budget
        self.tokens = tokens
        self.retry = retry
        self.repair = repair
        self.instruments = instruments
        self.busy = busy
        self.hedging = hedging
        self.max_body_bytes = settings.max_body_bytes
        self.timeouts = timeouts = settings.timeouts
        self.full_timeout = httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
        ).as_dict()
        self.longest_timeout = max(timeouts.connect, timeouts.read, timeouts.write, timeouts.pool)
        # Over http:// (or on aiohttp) there is no HTTP/2 connection to check before a send.
        speaks_http2 = settings.uses_http2
        self.http2_pool = client_pool(client) if speaks_http2 else None
        # On aiohttp a send goes straight to the transport: httpx's ``send`` adds auth, redirects,
        # cookie extraction and a log line, none of which the pipeline uses (redirects are off,
        # the jar keeps nothing), at ~8 % of a call's CPU. On httpcore the pool repairs read the
        # stream httpx wraps around the response, so its sends keep that path.
        transport = client_transport(client)
        self.direct = transport if isinstance(transport, AiohttpTransport) else None
        # Traces tell a GOAWAY-refused HTTP/2 request from a processed one, and measure pool wait.
        self.trace_attempts = trace_pool_wait or speaks_http2

    @staticmethod
    def backstop(deadline: float) -> asyncio.Timeout:
        """End the attempt shortly after the deadline, whatever the client library waits on.

        httpx's own timeouts, capped at the deadline, get the first chance to end an attempt
        cleanly; this ends what they do not bound: an HTTP/2 stream-slot or read-lock wait (with
        httpcore 1.0.9 a downstream lowering MAX_CONCURRENT_STREAMS deadlocks the connection's
        reader), response headers or a body dripped a byte at a time. What the cancellation
        leaves in the pool is repaired by ``_send_once`` and ``_close_checked``.
        """
        return asyncio.timeout(deadline + BACKSTOP_GRACE_SECONDS - time.monotonic())

    async def send_once(self, request: httpx.Request, max_bytes: int | None) -> httpx.Response:
        """One send; a cancelled or broken one has the pool checked for the damage it may leave.
        The body is read through ``CheckedBody``: at most ``max_bytes``, h2's errors mapped."""
        if self.http2_pool is not None:
            expire_closed_idle_http2(self.http2_pool)
        try:
            if self.direct is not None:
                response = await self.direct.handle_async_request(request)
            else:
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

    async def close_checked(self, response: httpx.Response) -> None:
        """Close ``response``, then check a cancellation did not strand its request in the pool."""
        try:
            await response.aclose()
        finally:
            self.repair.release_if_stranded(response)

    async def send(
        self, request: httpx.Request, deadline: float, call: InFlightCall
    ) -> httpx.Response:
        """The first attempt inline (hedged if configured); tenacity only when its outcome may be
        retried."""
        self.budget.deposit()
        idempotent = is_idempotent(request.method, request.headers)
        traces: list[AttemptTrace] = []
        first: httpx.Response | BaseException
        try:
            if self.hedging is not None and idempotent:
                first = await self.hedging.first_answer(
                    lambda attempt: self._attempt(attempt, deadline, traces, call),
                    request,
                    deadline,
                )
            else:
                first = await self._attempt(request, deadline, traces, call)
        except (httpx.HTTPError, TimeoutError) as exc:
            if self.retry.error_reason(exc, idempotent=idempotent, traces=traces) is None:
                raise self.failure(exc) from None
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
            if retrying.stopped_by in RETRIES_REFUSED:
                raise budget_spent(self.name) from None
            raise self.failure(exc) from None
        if retrying.stopped_by in RETRIES_REFUSED:
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
        self.prepare(request, deadline)
        trace = None
        if self.trace_attempts:
            trace = AttemptTrace()
            traces.append(trace)
            request.extensions["trace"] = trace
        try:
            async with self.backstop(deadline):
                response = await self.send_once(request, self.max_body_bytes)
                try:
                    await response.aread()  # closes the response at the end of the body
                except BaseException as exc:
                    await self.close_checked(response)
                    if isinstance(exc, httpx.LocalProtocolError):  # see bodies.broken_stream_state
                        self.repair.after_protocol_error()
                    raise
        except DOWNSTREAM_FAILURES:
            self.tokens.failed()
            raise
        if is_failure_status(response.status_code):
            self.tokens.failed()
        else:
            self.tokens.answered()
        self.instruments.attempt(request, call, response, trace)
        return response

    def prepare(self, request: httpx.Request, deadline: float) -> None:
        """Cap this attempt's timeouts by the deadline and forward what remains downstream."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise httpx.TimeoutException("deadline reached before the attempt", request=request)
        if remaining >= self.longest_timeout:
            request.extensions["timeout"] = self.full_timeout
        else:
            timeouts = self.timeouts
            request.extensions["timeout"] = {
                "connect": min(timeouts.connect, remaining),
                "read": min(timeouts.read, remaining),
                "write": min(timeouts.write, remaining),
                "pool": min(timeouts.pool, remaining),
            }
        request.headers[self.deadline_header] = str(int(remaining * 1000))

    def failure(self, exc: BaseException) -> DownstreamError:
        error = for_exception(self.name, exc)
        if error.reason == "pool_exhausted":
            self.instruments.exhausted("pool_timeout", self.busy)
        return error
