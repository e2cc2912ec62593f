"""Every way a call can fail, mapped to one ``DownstreamError`` in one place.

The pattern of httpx's ``map_httpcore_exceptions``: the pipeline raises what the client library
and its own guards raise, and only this module decides which 502, 503 or 504 a caller sees.
"""

from __future__ import annotations

from .bodies import BodyTooLarge
from .breaker import BreakerOpenError
from .bulkhead import BulkheadFullError
from .errors import (
    DownstreamBadBody,
    DownstreamBadGateway,
    DownstreamError,
    DownstreamTimeout,
    DownstreamUnavailable,
)
from .httplib import httpx
from .retry import parse_retry_after


def shed(name: str, exc: BulkheadFullError) -> DownstreamUnavailable:
    return DownstreamUnavailable(
        name,
        f"too many calls in flight to {name} ({exc.reason}); shed instead of queued",
        reason="shed",
        retry_after=exc.retry_after,
    )


def breaker_refused(name: str, exc: BreakerOpenError) -> DownstreamUnavailable:
    return DownstreamUnavailable(
        name,
        f"circuit breaker for {name} is {exc.state.value}",
        reason="breaker_open",
        retry_after=exc.retry_after,
    )


def budget_spent(name: str) -> DownstreamUnavailable:
    return DownstreamUnavailable(
        name,
        f"retry budget for {name} is spent; not multiplying an outage",
        reason="retry_budget",
        retry_after=1.0,
    )


def for_status(name: str, response: httpx.Response) -> DownstreamError:
    """A 5xx or 429 answer, once retries are over."""
    status = response.status_code
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return DownstreamUnavailable(
            name,
            f"{name} is throttling this service (429)",
            reason="throttled",
            retry_after=1.0 if retry_after is None else retry_after,
        )
    return DownstreamBadGateway(name, f"{name} answered {status}")


def for_exception(name: str, exc: BaseException) -> DownstreamError:
    """An httpx error, or the ``TimeoutError`` of the deadline's backstop."""
    if isinstance(exc, httpx.PoolTimeout):
        return DownstreamUnavailable(
            name,
            f"no connection to {name} became free in time",
            reason="pool_exhausted",
            retry_after=1.0,
        )
    if isinstance(exc, BodyTooLarge):
        return DownstreamBadBody(name, f"{name} sent a body larger than {exc.max_bytes} bytes")
    if isinstance(exc, httpx.TimeoutException):
        return DownstreamTimeout(name, f"{name} timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError):
        return DownstreamBadGateway(name, f"could not connect to {name}")
    if isinstance(exc, httpx.HTTPError):
        return DownstreamBadGateway(name, f"{name} broke the connection ({type(exc).__name__})")
    return DownstreamTimeout(name, f"{name} did not finish its response within the deadline")
