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


def test_an_item_that_is_not_json_is_a_502_naming_the_catalog() -> None:
    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>", headers={"content-type": "text/html"})

    with service_with(catalog=html) as http:
        response = http.get("/items/1")
    assert response.status_code == 502
    problem = response.json()
    assert (problem["downstream"], problem["reason"]) == ("catalog", "bad_body")
    assert problem["detail"] == "catalog answered text/html, not JSON"


def test_an_item_that_does_not_fit_the_model_is_a_502_saying_where() -> None:
    with service_with(catalog=answer(200, {"id": "1"})) as http:
        response = http.get("/items/1")
    assert response.status_code == 502
    assert "not a valid Item (1 error; name: missing)" in response.json()["detail"]
