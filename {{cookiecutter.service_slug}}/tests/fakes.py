"""Route tests against scripted downstreams: the real service and pipeline, a fake network.

Each named downstream's transport is an ``httpx.MockTransport``; its deadline, bulkhead,
breaker, retries and error mapping stay real, and the service runs on a real uvicorn::

    def test_stock_is_served() -> None:
        with service_with(inventory=answer(200, {"quantity": 3})) as http:
            assert http.get("/stock/abc").json()["quantity"] == 3
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.settings import load_settings

from tests.live import serve

Handler = Callable[[httpx.Request], httpx.Response]


def answer(status: int, json: Any = None, **headers: str) -> Handler:
    """A downstream that answers every request the same way."""
    return lambda request: httpx.Response(status, json=json, headers=headers)


@contextmanager
def service_with(**handlers: Handler) -> Iterator[httpx.Client]:
    """The service with each named downstream scripted; yields a client for its routes."""
    transports = {name: httpx.MockTransport(handler) for name, handler in handlers.items()}
    app = create_app(load_settings(environment="development"), transports=transports)
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        yield client
