"""The example routes: one downstream, the other, and both at once with graceful degradation."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from fastapi import APIRouter, HTTPException

from ..downstream.errors import DownstreamError
from ..downstreams import Catalog, Pricing

router = APIRouter(tags=["items"])
log = structlog.get_logger(__name__)


async def fetch_item(catalog: Catalog, item_id: str) -> dict[str, Any]:
    response = await catalog.get("/items/{item_id}", path_params={"item_id": item_id})
    if response.status_code == 404:
        raise HTTPException(404, f"item {item_id!r} does not exist")
    body: dict[str, Any] = response.json()
    return body


async def fetch_price(pricing: Pricing, item_id: str) -> dict[str, Any]:
    response = await pricing.get("/prices/{item_id}", path_params={"item_id": item_id})
    if response.status_code == 404:
        raise HTTPException(404, f"no price for item {item_id!r}")
    body: dict[str, Any] = response.json()
    return body


@router.get("/items/{item_id}")
async def get_item(item_id: str, catalog: Catalog) -> dict[str, Any]:
    return await fetch_item(catalog, item_id)


@router.get("/items/{item_id}/price")
async def get_item_price(item_id: str, pricing: Pricing) -> dict[str, Any]:
    return await fetch_price(pricing, item_id)


@router.get("/items/{item_id}/details")
async def get_item_details(item_id: str, catalog: Catalog, pricing: Pricing) -> dict[str, Any]:
    """Both downstreams at once; without a price the item is still served, marked degraded."""
    try:
        async with asyncio.TaskGroup() as group:
            item_task = group.create_task(fetch_item(catalog, item_id))
            price_task = group.create_task(price_or_none(pricing, item_id))
    except BaseExceptionGroup as failed:  # only the item can fail: surface its own error
        raise failed.exceptions[0] from None
    price = price_task.result()
    return {
        **item_task.result(),
        "price": price.get("price") if price else None,
        "degraded": price is None,
    }


async def price_or_none(pricing: Pricing, item_id: str) -> dict[str, Any] | None:
    try:
        return await fetch_price(pricing, item_id)
    except (DownstreamError, HTTPException) as exc:
        log.debug("items.details.degraded", item_id=item_id, cause=type(exc).__name__)
        return None
