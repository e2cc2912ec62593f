"""``GET /debug/downstreams``: each downstream's pool, bulkhead, breaker and budget, now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..downstream.views import describe

router = APIRouter(tags=["debug"])


@router.get("/debug/downstreams")
async def debug_downstreams(request: Request) -> dict[str, Any]:
    return {name: describe(d) for name, d in request.state.downstreams.items()}
