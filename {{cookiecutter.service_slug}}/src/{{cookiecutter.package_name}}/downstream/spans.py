"""The tracing seam: what the pipeline tells a tracer, with a default that does nothing.

The layer never imports a tracing library. ``Admission`` opens one ``CallSpan`` per admitted
(or refused) call and ``Ticket`` ends it; ``Instruments`` reports each retry's reason and
back-off to the span of the call it belongs to; the registry hands each shared client to
``instrument_client`` (per-attempt spans and ``traceparent`` come from there). ``NO_SPANS`` is
the default: its methods do nothing and allocate nothing, so an untraced call pays four method
calls. ``telemetry.py``, when the service was baked with OpenTelemetry, is the real one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .httplib import httpx

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig

    from .breaker import CircuitBreaker


class CallSpan(Protocol):
    """One downstream call, from admission to its ticket's release."""

    def admitted(self, breaker: CircuitBreaker) -> None:
        """A bulkhead slot was granted (the wait ends here); ``breaker`` says its state."""

    def refused(self, reason: str, exc: BaseException) -> None:
        """Shed or refused by the breaker before any I/O; the span ends."""

    def failed(self, exc: BaseException) -> None:
        """The call ends in ``exc`` (a ``DownstreamError`` or a cancellation)."""

    def verdict(self, outcome: str) -> None:
        """The outcome the breaker and the counters recorded ("ok", "error", "timeout"...)."""

    def end(self) -> None:
        """The slot was released: the call is over."""


class Spans(Protocol):
    """A tracer for the layer, and for the app around it."""

    enabled: bool

    def call(self, downstream: str, method: str, route: str) -> CallSpan:
        """Open the span of one call; it becomes the current span until ``end``."""

    def retry(self, reason: str, attempt: int, backoff: float) -> None:
        """The current call is about to sleep ``backoff`` s before attempt ``attempt + 1``."""

    def instrument_client(self, client: httpx.AsyncClient) -> None:
        """Trace each attempt ``client``'s transport sends, and propagate the context."""

    def fastapi_telemetry(self, config: TelemetryConfig) -> TelemetryConfig:
        """FastAPI's own telemetry settings for the inbound span, given the service's."""

    def log_ids(self) -> dict[str, str]:
        """The current trace and span ids, to bind into a request's log context."""

    def shutdown(self) -> None:
        """Flush what is buffered and stop exporting (the lifespan's end)."""


class NoCallSpan:
    __slots__ = ()

    def admitted(self, breaker: CircuitBreaker) -> None:
        pass

    def refused(self, reason: str, exc: BaseException) -> None:
        pass

    def failed(self, exc: BaseException) -> None:
        pass

    def verdict(self, outcome: str) -> None:
        pass

    def end(self) -> None:
        pass


NO_CALL_SPAN = NoCallSpan()


class NoSpans:
    """The default: nothing recorded, nothing propagated, nothing allocated per call."""

    enabled = False

    def call(self, downstream: str, method: str, route: str) -> CallSpan:
        return NO_CALL_SPAN

    def retry(self, reason: str, attempt: int, backoff: float) -> None:
        pass

    def instrument_client(self, client: httpx.AsyncClient) -> None:
        pass

    def fastapi_telemetry(self, config: TelemetryConfig) -> TelemetryConfig:
        return config

    def log_ids(self) -> dict[str, str]:
        return {}

    def shutdown(self) -> None:
        pass


NO_SPANS = NoSpans()


def tracing_for(service: str, deadline_header: str) -> Spans:
    """No tracer: the bake without OpenTelemetry calls this where ``telemetry.tracing_for``
    would read the ``OTEL_*`` variables."""
    return NO_SPANS
