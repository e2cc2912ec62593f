"""Real servers for the downstream tests: the bundled fault server and the service itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.downstream.client import Downstream
from {{ cookiecutter.package_name }}.downstream.config import (
    DownstreamSettings,
    ObservabilitySettings,
)
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstream.registry import open_downstreams
from {{ cookiecutter.package_name }}.downstreams import declared
from {{ cookiecutter.package_name }}.settings import load_settings

from loadtest.fault_server.harness import RunningFaultServer, serve_in_thread
from tests.live import serve

#: The engines an HTTP/1.1 downstream can run on (setting ENGINE); the pool contract holds on each.
HTTP1_ENGINES = ("aiohttp", "httpcore")


@pytest.fixture(params=HTTP1_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(params=["http1-aiohttp", "http1-httpcore", "http2"])
def any_transport(request: pytest.FixtureRequest) -> Iterator[tuple[RunningFaultServer, Any]]:
    """The fault server over plain HTTP/1.1 (on either engine), or over TLS with the service
    speaking HTTP/2."""
    tls = request.param == "http2"
    with serve_in_thread(tls=tls) as server:
        if tls:
            yield server, {"http2": True, "ca_bundle": str(server.ca_path)}
        else:
            yield server, {"http2": False, "engine": request.param.removeprefix("http1-")}


@pytest.fixture
def fault() -> Iterator[RunningFaultServer]:
    with serve_in_thread() as server:
        yield server


@contextmanager
def running_service(
    fault: RunningFaultServer,
    service: dict[str, Any] | None = None,
    *,
    every: dict[str, Any] | None = None,
    **catalog: Any,
) -> Iterator[tuple[str, FastAPI]]:
    """The service on 127.0.0.1 with every downstream on ``fault``; ``every`` overrides every
    downstream's settings, ``catalog`` the catalog's, ``service`` the service-wide ones."""
    downstreams: dict[str, dict[str, Any]] = {
        name: {"base_url": fault.base_url, **(every or {})} for name in declared.names()
    }
    downstreams["catalog"].update(catalog)
    settings = load_settings(**(service or {}), downstreams=downstreams)
    app = create_app(settings)
    with serve(app) as base_url:
        yield base_url, app


@asynccontextmanager
async def one_downstream(
    base_url: str, *, observability: ObservabilitySettings | None = None, **fields: Any
) -> AsyncIterator[Downstream]:
    """A single ``Downstream`` opened the way the lifespan opens it."""
    settings = DownstreamSettings.model_validate({"base_url": base_url, **fields})
    async with open_downstreams(
        {"catalog": settings},
        deadline_header="x-request-deadline-ms",
        drain_seconds=1,
        observability=observability,
    ) as downstreams:
        yield downstreams["catalog"]


def downstreams_at(base_url: str) -> dict[str, str]:
    """Settings (names without the prefix) pointing every declared downstream at ``base_url``."""
    return {f"DOWNSTREAMS__{name.upper()}__BASE_URL": base_url for name in declared.names()}


def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.02)


def log_events(output: str) -> list[dict[str, Any]]:
    """The JSON log lines in captured output (``log_format="json"``)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def hold_one_then_overflow(base_url: str) -> list[int]:
    """With the catalog's bulkhead one wide and no queue and its calls slow: one call holds the
    slot, a second is shed. The two statuses, the shed one first."""

    async def two_calls() -> list[int]:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            holder = asyncio.ensure_future(client.get("/items/held"))
            await asyncio.sleep(0.2)
            shed = await client.get("/items/shed")
            return [shed.status_code, (await holder).status_code]

    return asyncio.run(two_calls())
