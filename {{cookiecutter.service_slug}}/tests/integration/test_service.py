"""The service as a whole, served by a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.settings import ENV_PREFIX, load_settings

from tests.live import serve

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "{{ cookiecutter.package_name }}"


@pytest.fixture
def service() -> Iterator[str]:
    with serve(create_app(load_settings())) as base_url:
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_module(env: dict[str, str]) -> subprocess.Popen[str]:
    full_env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src"), **env}
    return subprocess.Popen(
        [sys.executable, "-m", PACKAGE],
        env=full_env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_bad_setting_stops_start_up_with_one_line_naming_it() -> None:
    process = run_module({f"{ENV_PREFIX}PORT": "abc"})
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"configuration error: {ENV_PREFIX}PORT:")
    assert "Traceback" not in stderr


def test_python_m_serves_json_logs_and_stops_cleanly_on_sigterm() -> None:
    port = free_port()
    process = run_module({f"{ENV_PREFIX}PORT": str(port), "LOG_FORMAT": "json"})
    try:
        give_up = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > give_up:
                    raise
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.headers["x-request-id"]
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    names = {event["event"] for event in events}
    assert "service.ready" in names
    assert all("timestamp" in event and "level" in event for event in events)
    assert not [e for e in events if e["level"] in ("error", "critical")], events
