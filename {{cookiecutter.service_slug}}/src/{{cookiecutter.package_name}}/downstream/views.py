"""What a downstream shows: the pool snapshot for logs and the monitor, the pool gauges, and
everything ``/debug/downstreams`` prints. Read-only: nothing here changes a part of the pipeline.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Downstream


def snapshot(downstream: Downstream) -> dict[str, Any]:
    """Pool, bulkhead and utilisation now (for logs, the monitor and the debug view)."""
    stats = downstream.pool_stats()
    bulkhead = downstream.bulkhead
    max_connections = downstream.settings.limits.max_connections
    in_flight = bulkhead.in_flight
    utilisation = max(
        in_flight / bulkhead.limit, (stats.active + stats.connecting) / max_connections
    )
    return {
        "pool": {
            "connecting": stats.connecting,
            "active": stats.active,
            "idle": stats.idle,
            "http2": stats.http2,
            "requests_active": stats.requests_active,
            "requests_queued": stats.requests_queued,
            "max_connections": max_connections,
        },
        "in_flight": in_flight,
        "queued": bulkhead.queued,
        "limit": bulkhead.limit,
        "utilisation": round(utilisation, 3),
    }


def busy(downstream: Downstream) -> dict[str, Any]:
    """The snapshot and the oldest calls: who holds the pool, for the exhaustion event."""
    return {"oldest_calls": downstream.in_flight.oldest(), **snapshot(downstream)}


def update_gauges(downstream: Downstream) -> None:
    """Refresh the pool gauges (the monitor calls this once a tick)."""
    bulkhead = downstream.bulkhead
    downstream.metrics.pool(downstream.pool_stats(), bulkhead.in_flight, bulkhead.queued)


def describe(downstream: Downstream) -> dict[str, Any]:
    """Everything ``/debug/downstreams`` shows for one downstream; secrets masked."""
    bulkhead = downstream.bulkhead
    adaptive = downstream.admission.limit
    retry_tokens = downstream.retry_tokens
    hedging = downstream.hedging
    return {
        **busy(downstream),
        "bulkhead": {
            "limit": bulkhead.limit,
            "in_flight": bulkhead.in_flight,
            "queued": bulkhead.queued,
            "shed": bulkhead.shed_count,
            "adaptive": adaptive.snapshot() if adaptive else None,
        },
        "open_streams": len(downstream.open_streams.streams),
        "leaked_responses": downstream.open_streams.leaks_reported,
        "orphans_repaired": downstream.orphans_repaired,
        "breaker": asdict(downstream.breaker.snapshot()),
        "retry_budget": {
            "balance": downstream.budget.balance(),
            "exhausted": downstream.budget.exhausted_count,
            "retries_by_reason": dict(downstream.retry.retries_by_reason),
        },
        "retry_throttle": {
            "tokens": round(retry_tokens.tokens, 2),
            "max_tokens": retry_tokens.max_tokens,
            "throttled": retry_tokens.throttled_count,
        },
        "hedging": hedging.snapshot() if hedging else None,
        "outcomes": dict(downstream.outcomes),
        "config": downstream.settings.model_dump(mode="json"),
    }
