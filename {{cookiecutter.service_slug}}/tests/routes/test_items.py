"""The example routes against scripted downstreams (see ``tests/fakes.py``)."""

from __future__ import annotations

from {{ cookiecutter.package_name }}.downstream.httplib import httpx

from tests.fakes import answer, service_with

ITEM = {"id": "1", "name": "item 1"}


def test_an_item_is_served() -> None:
    with service_with(catalog=answer(200, ITEM)) as http:
        response = http.get("/items/1")
    assert response.status_code == 200
    assert response.json() == ITEM


def test_a_missing_item_is_a_404_problem() -> None:
    with service_with(catalog=answer(404, {"error": "not found"})) as http:
        response = http.get("/items/1")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_details_degrade_when_pricing_fails_after_its_retries() -> None:
    seen: list[httpx.Request] = []

    def pricing(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503, json={"error": "down"})

    with service_with(catalog=answer(200, ITEM), pricing=pricing) as http:
        response = http.get("/items/1/details")
    assert response.status_code == 200
    assert response.json() == {**ITEM, "price": None, "degraded": True}
    assert len(seen) == 3  # the real retry policy: three attempts, then the route degrades
    assert seen[0].url.path == "/pricing/prices/1"  # development's loopback base path


def test_a_failing_catalog_is_a_502_naming_it() -> None:
    with service_with(catalog=answer(500, {"error": "boom"})) as http:
        response = http.get("/items/1")
    assert response.status_code == 502
    assert response.json()["downstream"] == "catalog"
