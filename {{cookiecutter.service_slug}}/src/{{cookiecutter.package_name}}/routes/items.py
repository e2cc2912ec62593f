"""The example routes: one downstream, the other, and both at once with graceful degradation.

Downstream answers are read with ``get_json(..., model=...)``: a body that is not JSON or does
not fit the model is a 502 naming the downstream, never a 500 from a bare ``response.json()``.
"""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from ..downstream.errors import DownstreamError, DownstreamNotFound
from ..downstreams import Catalog, Pricing

router = APIRouter(tags=["items"])
log = structlog.get_logger(__name__)


class Item(BaseModel):
    id: str
    name: str


class Price(BaseModel):
    price: float
    currency: str


class ItemDetails(Item):
    price: float | None
    degraded: bool


async def fetch_item(catalog: Catalog, item_id: str) -> Item:
    try:
        return await catalog.get_json(
            "/items/{item_id}", model=Item, path_params={"item_id": item_id}
        )
    except DownstreamNotFound:
        raise HTTPException(404, f"item {item_id!r} does not exist") from None


async def fetch_price(pricing: Pricing, item_id: str) -> Price:
    try:
        return await pricing.get_json(
            "/prices/{item_id}", model=Price, path_params={"item_id": item_id}
        )
    except DownstreamNotFound:
        raise HTTPException(404, f"no price for item {item_id!r}") from None


@router.get("/items/{item_id}")
async def get_item(item_id: str, catalog: Catalog) -> Item:
    return await fetch_item(catalog, item_id)


@router.get("/items/{item_id}/price")
async def get_item_price(item_id: str, pricing: Pricing) -> Price:
    return await fetch_price(pricing, item_id)


@router.get("/items/{item_id}/details")
async def get_item_details(item_id: str, catalog: Catalog, pricing: Pricing) -> ItemDetails:
    """Both downstreams at once; without a price the item is still served, marked degraded."""
    try:
        async with asyncio.TaskGroup() as group:
            item_task = group.create_task(fetch_item(catalog, item_id))
            price_task = group.create_task(price_or_none(pricing, item_id))
    except BaseExceptionGroup as failed:  # only the item can fail: surface its own error
        raise failed.exceptions[0] from None
    price = price_task.result()
    return ItemDetails(
        **item_task.result().model_dump(),
        price=price.price if price else None,
        degraded=price is None,
    )


async def price_or_none(pricing: Pricing, item_id: str) -> Price | None:
    try:
        return await fetch_price(pricing, item_id)
    except (DownstreamError, HTTPException) as exc:
        log.debug("items.details.degraded", item_id=item_id, cause=type(exc).__name__)
        return None
