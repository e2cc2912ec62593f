"""The Python reference: the same job with the least a Python service can spend on it.

A raw ASGI app on uvicorn (uvloop, httptools, no access log) and one ``aiohttp.ClientSession``
opened by the lifespan: ``GET /items/{id}`` fetches the downstream's item, parses it and answers
it re-encoded, as the generated service does, with none of its guarantees (no deadline, bulkhead,
breaker, retries, metrics or logs). What any target costs above this is the price of its
framework, client engine and layer; issue 13 measures every target against it.

    python -m benchmarks.reference_app --port 8005 --downstream http://127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

from benchmarks.bare_app import serve

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]


class ReferenceApp:
    def __init__(self, downstream: str, max_connections: int) -> None:
        self.downstream = downstream.rstrip("/")
        self.max_connections = max_connections
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        path: str = scope["path"]
        if path == "/healthz":
            await answer(send, 200, b'{"status":"ok"}')
            return
        if not path.startswith("/items/") or self.session is None:
            await answer(send, 404, b'{"reason":"not_found"}')
            return
        try:
            async with self.session.get(self.downstream + path) as response:
                if response.status != 200:
                    await answer(send, 502, b'{"reason":"bad_gateway"}')
                    return
                item = json.loads(await response.read())
        except aiohttp.ClientError as exc:
            reason = json.dumps({"reason": type(exc).__name__}).encode()
            await answer(send, 502, reason)
            return
        await answer(send, 200, json.dumps(item).encode())

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=self.max_connections)
                self.session = aiohttp.ClientSession(connector=connector)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def answer(send: Send, status: int, body: bytes) -> None:
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--downstream", required=True)
    parser.add_argument("--max-connections", type=int, default=100)
    args = parser.parse_args()
    serve(ReferenceApp(args.downstream, args.max_connections), args.port)


if __name__ == "__main__":
    main()
