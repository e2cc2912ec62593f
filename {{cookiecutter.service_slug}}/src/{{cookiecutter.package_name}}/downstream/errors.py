"""What a downstream call can fail with, each mapped to one HTTP status by ``problems``.

Messages name the downstream and the reason only: never a URL (it may carry secrets), never a
traceback. ``retry_after`` is the seconds a client should wait before trying again.
"""

from __future__ import annotations

import math


class DownstreamError(Exception):
    """Base class: a downstream call did not produce a usable response.

    ``verdict`` is what the circuit breaker learns: "failed" counts against the downstream,
    "answered" is a working downstream's answer (a 404), "none" means nothing was sent.
    """

    status_code = 502
    reason = "bad_gateway"
    verdict = "failed"

    def __init__(self, downstream: str, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{downstream}: {detail}")
        self.downstream = downstream
        self.detail = detail
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str | None:
        """Whole seconds, at least 1, as ``Retry-After`` wants them."""
        if self.retry_after is None:
            return None
        return str(max(1, math.ceil(self.retry_after)))


class DownstreamUnavailable(DownstreamError):
    """Shed before sending: bulkhead full, breaker open or retry budget spent (503)."""

    status_code = 503

    def __init__(self, downstream: str, detail: str, *, reason: str, retry_after: float) -> None:
        super().__init__(downstream, detail, retry_after=retry_after)
        self.reason = reason


class DownstreamTimeout(DownstreamError):
    """The deadline or an attempt's timeout ran out (504)."""

    status_code = 504
    reason = "timeout"


class DownstreamBadGateway(DownstreamError):
    """5xx after retries, a protocol error or a broken connection (502)."""

    status_code = 502
    reason = "bad_gateway"


class DownstreamBadBody(DownstreamBadGateway):
    """The answer's body is not what was asked for: not JSON, not the model, too large (502)."""

    reason = "bad_body"


class DownstreamRejected(DownstreamBadGateway):
    """A typed read got a 4xx (other than 404 and 429): the downstream refused the call (502)."""

    reason = "rejected"
    verdict = "answered"


class DownstreamNotFound(DownstreamError):
    """A typed read got a 404: the thing asked for does not exist (404, unless caught)."""

    status_code = 404
    reason = "not_found"
    verdict = "answered"


class UnsafeDownstreamPath(DownstreamError):
    """The request would leave the downstream's configured origin or base path (400)."""

    status_code = 400
    reason = "unsafe_path"
    verdict = "none"
