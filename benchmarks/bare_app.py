"""The baselines: a bare FastAPI app doing the same downstream call as the generated service.

``--client shared`` is the seed guide's Step 1: one ``httpx.AsyncClient`` for the process with
``Limits(max_connections=200, max_keepalive_connections=50)`` and its timeouts (connect 5, read
30, write 5, pool 5), opened and closed by the lifespan; ``--aiohttp-transport-of PACKAGE``
puts that client on a bake's aiohttp transport, so the service is compared with a bare app on
the same engine. ``--client per-request`` is the
anti-pattern the guide warns about: a new client (and SSL context) for every call. Both are
served like the generated service (uvicorn, uvloop, httptools, no access log).

The only addition to the guide's code is an exception handler that names an httpx failure
(``{"reason": "PoolTimeout"}``, 503 for a pool timeout, 502 otherwise), so the load driver can
count PoolTimeouts instead of seeing anonymous 500s.

    python -m benchmarks.bare_app --port 8002 --downstream http://127.0.0.1:8001 --client shared
"""

from __future__ import annotations

import argparse
import importlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SEED_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=5.0, pool=5.0)


def aiohttp_transport(package: str, max_connections: int) -> httpx.AsyncBaseTransport:
    """The bake's own ``AiohttpTransport``, sized like the guide's limits."""
    engine = importlib.import_module(f"{package}.downstream.aiohttp_transport")
    config = importlib.import_module(f"{package}.downstream.config")
    keepalive = min(50, max_connections)  # httpx caps it the same way
    limits = config.LimitSettings(
        max_connections=max_connections, max_keepalive_connections=keepalive
    )
    transport: httpx.AsyncBaseTransport = engine.AiohttpTransport(
        limits, ssl.create_default_context()
    )
    return transport


def make_app(
    downstream: str, client_mode: str, max_connections: int, engine_package: str | None = None
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if client_mode == "per-request":
            yield
            return
        transport = aiohttp_transport(engine_package, max_connections) if engine_package else None
        async with httpx.AsyncClient(
            base_url=downstream,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=50),
            timeout=SEED_TIMEOUT,
            transport=transport,
        ) as client:
            app.state.client = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.exception_handler(httpx.HTTPError)
    async def name_the_failure(request: Request, exc: Exception) -> JSONResponse:
        status = 503 if isinstance(exc, httpx.PoolTimeout) else 502
        return JSONResponse({"reason": type(exc).__name__}, status_code=status)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if client_mode == "shared":

        @app.get("/items/{item_id}")
        async def shared_client(item_id: str, request: Request) -> Any:
            response = await request.app.state.client.get(f"/items/{item_id}")
            response.raise_for_status()
            return response.json()

    else:

        @app.get("/items/{item_id}")
        async def client_per_request(item_id: str) -> Any:
            async with httpx.AsyncClient(base_url=downstream, timeout=SEED_TIMEOUT) as client:
                response = await client.get(f"/items/{item_id}")
            response.raise_for_status()
            return response.json()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--downstream", required=True)
    parser.add_argument("--client", choices=("shared", "per-request"), required=True)
    parser.add_argument("--max-connections", type=int, default=200)
    parser.add_argument("--aiohttp-transport-of", metavar="PACKAGE", help="a bake's package")
    args = parser.parse_args()
    app = make_app(args.downstream, args.client, args.max_connections, args.aiohttp_transport_of)
    serve(app, args.port)


def serve(app: Any, port: int) -> None:
    """How every baseline is served: as the generated service is (uvloop, httptools, no access
    log, log level warning)."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        server_header=False,
        backlog=4096,
    )


if __name__ == "__main__":
    main()
