"""The downstream every target calls: a raw ASGI app on uvicorn that answers small JSON.

Raw ASGI, not a framework and not the fault server: it must never be the bottleneck, so each
response costs a few dozen microseconds. ``--latency-ms`` makes it the slow downstream (it
sleeps without holding the CPU, as a slow database behind a real service would);
``--capacity N`` makes it degrade past N requests in flight, each slower by the square of the
excess (the fault server's ``degrade`` curve: throughput falls as concurrency rises).

    python -m benchmarks.downstream --port 8001 [--latency-ms 50] [--capacity 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import uvicorn

Scope = dict[str, Any]


def make_app(latency_ms: float, capacity: int = 0) -> Any:
    delay = latency_ms / 1000
    in_flight = 0

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        path: str = scope["path"]
        item_id = path.rsplit("/", 1)[-1] or "0"
        body = json.dumps({"id": item_id, "name": f"item {item_id}", "stock": 7}).encode()
        nonlocal in_flight
        in_flight += 1
        try:
            if delay:
                slower = max(1.0, in_flight / capacity) ** 2 if capacity else 1.0
                await asyncio.sleep(delay * slower)
        finally:
            in_flight -= 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=0, help="degrade past this (0: never)")
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.latency_ms, args.capacity),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
