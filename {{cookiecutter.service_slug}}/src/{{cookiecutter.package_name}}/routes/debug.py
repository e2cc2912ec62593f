"""``GET /debug/downstreams``: each downstream's pool, bulkhead, breaker and budget, now."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request

router = APIRouter(tags=["debug"])


@router.get("/debug/downstreams")
async def debug_downstreams(request: Request) -> dict[str, Any]:
    views: dict[str, Any] = {}
    for name, downstream in request.state.downstreams.items():
        views[name] = {
            **downstream.snapshot(),
            "oldest_calls": downstream.in_flight.oldest(),
            "bulkhead": {
                "in_flight": downstream.bulkhead.in_flight,
                "queued": downstream.bulkhead.queued,
                "shed": downstream.bulkhead.shed_count,
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
            "outcomes": dict(downstream.outcomes),
            "config": downstream.settings.model_dump(mode="json"),
        }
    return views
