"""``RequestBuilder`` builds exactly the request ``client.build_request`` would, for every shape
of call the layer makes, on a client built the way the registry builds it."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.downstream.config import DownstreamSettings
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstream.registry import build_client
from {{ cookiecutter.package_name }}.downstream.request_builder import RequestBuilder
from {{ cookiecutter.package_name }}.downstream.urls import PathBuilder

BASES = ["http://127.0.0.1:8001", "https://catalog.internal/api/v2/", "http://[::1]:9000/sub"]
CALLS: list[tuple[str, str, dict[str, object], dict[str, Any]]] = [
    ("GET", "/items/{item_id}", {"item_id": "42"}, {}),
    ("GET", "/items/{item_id}", {"item_id": "a b/ü?#"}, {"params": {"q": "x y", "n": 3}}),
    ("POST", "/items", {}, {"json": {"name": "ü", "n": [1, 2]}}),
    ("PUT", "/items/{item_id}", {"item_id": "7"}, {"content": b"raw", "headers": {"x-a": "b"}}),
    ("GET", "/", {}, {"headers": {"Accept": "text/plain"}}),
]


def fields(request: httpx.Request) -> tuple[Any, ...]:
    return (
        request.method,
        str(request.url),
        request.url.raw_path,
        request.headers.multi_items(),
        request.read(),
        request.extensions,
    )


@pytest.mark.parametrize("base_url", BASES)
@pytest.mark.parametrize(("method", "template", "path_params", "options"), CALLS)
def test_the_same_request_as_httpx_builds(
    base_url: str,
    method: str,
    template: str,
    path_params: dict[str, object],
    options: dict[str, Any],
) -> None:
    settings = DownstreamSettings.model_validate(
        {"base_url": base_url, "headers": {"authorization": "Bearer s3cret"}}
    )
    client = build_client(settings, ssl.create_default_context())
    path = PathBuilder("catalog", base_url).build(template, path_params)
    built = RequestBuilder(client).build(method, path, **options)
    assert fields(built) == fields(client.build_request(method, path, **options))


def test_a_client_with_default_params_is_refused() -> None:
    client = httpx.AsyncClient(base_url="http://127.0.0.1:8001", params={"k": "v"})
    with pytest.raises(ValueError, match="default params"):
        RequestBuilder(client)
