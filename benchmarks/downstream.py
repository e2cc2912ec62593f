"""The downstream every target calls: a raw ASGI app on uvicorn that answers small JSON.

Raw ASGI, not a framework and not the fault server: it must never be the bottleneck, so each
response costs a few dozen microseconds. ``--latency-ms`` makes it the slow downstream (it
sleeps without holding the CPU, as a slow database behind a real service would).

    python -m benchmarks.downstream --port 8001 [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import uvicorn

Scope = dict[str, Any]


def make_app(latency_ms: float) -> Any:
    delay = latency_ms / 1000

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        path: str = scope["path"]
        item_id = path.rsplit("/", 1)[-1] or "0"
        body = json.dumps({"id": item_id, "name": f"item {item_id}", "stock": 7}).encode()
        if delay:
            await asyncio.sleep(delay)
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
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.latency_ms),
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
