"""Retry decisions for downstream calls, on tenacity.

The first attempt runs without tenacity (most calls need no retry, and tenacity's loop costs
tens of microseconds); when its outcome may be retried, a fresh ``AsyncRetrying`` is built for
the call (a shared one corrupts its state across tasks: tenacity #93) and replays that outcome
as its attempt 1, so back-off, ``Retry-After``, stop and budget decisions see it. The
strategies are built once per downstream. Rules:
- only idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE) or requests with an
  ``Idempotency-Key`` are retried, decided before the first attempt;
- on connection errors and on 429/502/503/504 (configurable);
- full-jitter exponential back-off, but never earlier than the server's ``Retry-After``
  (seconds or HTTP date); a ``Retry-After`` above the cap is not retried at all;
- never past the call's deadline, and only while the downstream's retry tokens (it has been
  answering: ``retry_tokens.py``) and its retry budget (``budget.py``) both allow;
- an HTTP/2 attempt refused by a GOAWAY before the server processed it is retried whatever the
  method.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

from tenacity import AsyncRetrying, RetryCallState
from tenacity.wait import wait_random_exponential

from .budget import RetryBudget
from .config import RetrySettings
from .httplib import httpx
from .instruments import Instruments
from .retry_tokens import RetryTokens
from .tracing import AttemptTrace

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_ERRORS = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ConnectTimeout)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_idempotent(method: str, headers: httpx.Headers) -> bool:
    return method in IDEMPOTENT_METHODS or "idempotency-key" in headers


class CallRetrying(AsyncRetrying):
    """One call's retry loop: tenacity plus the facts the strategies need about this call."""

    def __init__(
        self, policy: RetryPolicy, *, deadline: float, idempotent: bool, trace: list[AttemptTrace]
    ) -> None:
        super().__init__(
            stop=policy.should_stop,
            wait=policy.wait,
            retry=policy.should_retry,
            before_sleep=policy.before_sleep,
            retry_error_callback=last_outcome,
        )
        self.deadline = deadline
        self.idempotent = idempotent
        self.traces = trace
        self.stopped_by: str | None = None


def last_outcome(state: RetryCallState) -> Any:
    """When retrying stops, hand back the last response (or raise the last error) unchanged."""
    assert state.outcome is not None
    return state.outcome.result()


class RetryPolicy:
    """Per-downstream strategies, shared by every ``CallRetrying`` of that downstream."""

    def __init__(
        self,
        downstream: str,
        settings: RetrySettings,
        budget: RetryBudget,
        tokens: RetryTokens,
        instruments: Instruments,
    ) -> None:
        self.downstream = downstream
        self.settings = settings
        self.budget = budget
        self.tokens = tokens
        self.instruments = instruments
        self.backoff = wait_random_exponential(
            multiplier=settings.backoff_base, max=settings.backoff_cap
        )
        self.retries_by_reason: dict[str, int] = {}

    def call(
        self, *, deadline: float, idempotent: bool, traces: list[AttemptTrace]
    ) -> CallRetrying:
        return CallRetrying(self, deadline=deadline, idempotent=idempotent, trace=traces)

    def error_reason(
        self, exc: BaseException, *, idempotent: bool, traces: list[AttemptTrace]
    ) -> str | None:
        """Why a failed attempt may be retried, or None when it must not be."""
        if traces and traces[-1].never_processed(exc):
            return "goaway_unprocessed"
        if idempotent and isinstance(exc, RETRYABLE_ERRORS):
            return type(exc).__name__
        return None

    def response_reason(self, response: httpx.Response, *, idempotent: bool) -> str | None:
        """Why a response may be retried, or None when it must not be."""
        if not idempotent or response.status_code not in self.settings.retryable_statuses:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is not None and retry_after > self.settings.retry_after_cap:
            return None
        return f"status_{response.status_code}"

    def retry_reason(self, state: RetryCallState) -> str | None:
        """``error_reason``/``response_reason`` for tenacity's view of an attempt."""
        call = state.retry_object
        assert isinstance(call, CallRetrying)
        assert state.outcome is not None
        if state.outcome.failed:
            exc = state.outcome.exception()
            assert exc is not None
            return self.error_reason(exc, idempotent=call.idempotent, traces=call.traces)
        return self.response_reason(state.outcome.result(), idempotent=call.idempotent)

    def should_retry(self, state: RetryCallState) -> bool:
        return self.retry_reason(state) is not None

    def wait(self, state: RetryCallState) -> float:
        """Full-jitter back-off, but never before the server's ``Retry-After``."""
        delay = self.backoff(state)
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = parse_retry_after(outcome.result().headers.get("retry-after"))
            if retry_after is not None:
                delay = max(delay, retry_after)
        return float(delay)

    def should_stop(self, state: RetryCallState) -> bool:
        call = state.retry_object
        assert isinstance(call, CallRetrying)
        if state.attempt_number >= self.settings.max_attempts:
            call.stopped_by = "attempts"
        elif time.monotonic() + state.upcoming_sleep >= call.deadline:
            call.stopped_by = "deadline"
        elif not self._transparent(state) and not self.tokens.allow_retry():  # before the budget
            call.stopped_by = "throttled"
            self.instruments.retry_throttled()
        elif not self.budget.try_withdraw():
            call.stopped_by = "budget"
            self.instruments.budget_exhausted()
        else:
            return False
        return True

    def _transparent(self, state: RetryCallState) -> bool:
        """A retry of a request the server never processed, which the tokens do not refuse."""
        return self.retry_reason(state) == "goaway_unprocessed"

    def before_sleep(self, state: RetryCallState) -> None:
        reason = self.retry_reason(state) or "unknown"
        self.retries_by_reason[reason] = self.retries_by_reason.get(reason, 0) + 1
        self.instruments.retried(reason, state.attempt_number, state.upcoming_sleep)
