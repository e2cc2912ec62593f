"""The service as the PoolTimeout guide's "before" picture: everything the template prevents.

Same routes as the generated service, none of its defences. On purpose:

- a new ``httpx.AsyncClient`` per call, never closed (a pool, an SSL context and sockets each);
- no limits and no timeouts: ``max_connections=None``, ``timeout=None``, so a hung downstream
  hangs the request and a slow one piles up connections;
- a streamed response that is never closed when the downstream answers an error;
- retries of every 5xx and 429 at once: no back-off, no budget, ``Retry-After`` ignored;
- no bulkhead, no breaker, no deadline: overload queues instead of being shed;
- ``/details`` fails when pricing fails instead of degrading;
- any error escapes as a bare ``500 Internal Server Error`` (text, not problem+json).

Run it with ``uvicorn naive_service.app:app --app-dir tests``; the downstream is
``LOADTEST_DOWNSTREAM_URL`` (``python -m loadtest --service-command`` sets it).
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException

DOWNSTREAM = os.environ.get("LOADTEST_DOWNSTREAM_URL", "http://127.0.0.1:8001")
ATTEMPTS = 3

app = FastAPI(title="naive service")


async def get_json(path: str) -> Any:
    for _attempt in range(ATTEMPTS):
        client = httpx.AsyncClient(  # one per call, never closed
            base_url=DOWNSTREAM,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            timeout=None,
        )
        response = await client.send(client.build_request("GET", path), stream=True)
        if response.status_code == 200:
            return json.loads(await response.aread())
        if response.status_code == 404:
            raise HTTPException(404, "not found")  # the response is left open
        # 5xx or 429: try again at once, Retry-After or not; the response is left open
    raise RuntimeError(f"{path} failed {ATTEMPTS} times")  # becomes a bare 500


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.get("/items/{item_id}")
async def get_item(item_id: str) -> Any:
    return await get_json(f"/catalog/items/{item_id}")


@app.get("/items/{item_id}/price")
async def get_price(item_id: str) -> Any:
    return await get_json(f"/pricing/prices/{item_id}")


@app.get("/items/{item_id}/details")
async def get_details(item_id: str) -> Any:
    item = await get_json(f"/catalog/items/{item_id}")
    price = await get_json(f"/pricing/prices/{item_id}")  # no degradation: pricing down = down
    return {**item, "price": price.get("price"), "degraded": False}
