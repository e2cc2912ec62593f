"""Liveness and readiness: `/healthz` touches nothing downstream; `/readyz` follows the lifespan."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..problems import problem

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(request: Request) -> Response:
    """Ready once the lifespan opened the downstream clients; 503 again once shutdown begins."""
    if getattr(request.app.state, "ready", False):
        return JSONResponse({"status": "ready"})
    return problem(503, "the service is starting or shutting down", headers={"Retry-After": "1"})
