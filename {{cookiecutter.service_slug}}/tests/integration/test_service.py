"""The service as a whole, served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.settings import ENV_PREFIX, load_settings

from tests.integration.conftest import downstreams_at
from tests.integration.service_process import service_process
from tests.live import serve


@pytest.fixture
def service() -> Iterator[str]:
    with serve(create_app(load_settings(environment="development"))) as base_url:
        yield base_url


def test_healthz_and_readyz_answer(service: str) -> None:
    assert httpx.get(f"{service}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{service}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_request_id_is_echoed_or_made(service: str) -> None:
    given = httpx.get(f"{service}/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = httpx.get(f"{service}/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert len(made.headers["x-request-id"]) == 32
    assert made.headers["x-request-id"] != "bad id\twith tab"


def test_unknown_route_is_problem_json(service: str) -> None:
    response = httpx.get(f"{service}/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"


def test_wrong_method_is_problem_json(service: str) -> None:
    response = httpx.post(f"{service}/healthz")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


def test_bad_setting_stops_start_up_with_one_line_naming_it(tmp_path: Path) -> None:
    with service_process({"PORT": "abc"}, tmp_path) as service:
        assert service.wait() == 2
        stderr = service.stderr()
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"configuration error: {ENV_PREFIX}PORT:")
    assert "Traceback" not in stderr


def test_production_without_a_base_url_stops_start_up_naming_it(tmp_path: Path) -> None:
    others = downstreams_at("http://127.0.0.1:9")
    del others["DOWNSTREAMS__CATALOG__BASE_URL"]  # only catalog's URL is missing
    with service_process(others, tmp_path) as svc:
        assert svc.wait() == 2
        stderr = svc.stderr()
    assert stderr.strip().splitlines() == [
        f"configuration error: {ENV_PREFIX}DOWNSTREAMS__CATALOG__BASE_URL: required outside "
        "ENVIRONMENT=development (there is no default)"
    ]


def test_python_m_serves_json_logs_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with service_process({"ENVIRONMENT": "development"}, tmp_path) as service:
        service.wait_until_ready()
        response = httpx.get(f"{service.base_url}/healthz", timeout=5)
        assert response.status_code == 200
        assert response.headers["x-request-id"]
        service.terminate()
        assert service.wait() == 0, service.stderr()
        events = service.log_events()
    names = {event["event"] for event in events}
    assert "service.ready" in names
    assert all("timestamp" in event and "level" in event for event in events)
    assert not [e for e in events if e["level"] in ("error", "critical")], events
