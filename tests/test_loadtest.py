"""`python -m loadtest --profile quick` passes on the baked service and fails on a naive one.

Each run takes about 70-80 s of real load on 127.0.0.1, so these tests carry the ``loadtest``
marker: ``pytest -m loadtest`` runs only them, ``pytest -m "not loadtest"`` skips them. The load
test runs in a subprocess with this environment's interpreter (locust must never be imported
into a pytest process), and the verdict is read back from the run's ``verdict.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import bake_project

pytestmark = pytest.mark.loadtest

NAIVE_SERVICE = Path(__file__).resolve().parent / "naive_service"
RUN_TIMEOUT_S = 300  # the quick profile is ~90 s; the rest is slack for a busy machine
#: SLOs the naive service cannot meet whatever the machine's load: it never sheds, has no
#: breaker and exposes no /debug/downstreams.
NAIVE_MUST_BREAK = (
    ("2-slow", "shed 503 p99 <= bulkhead max wait + margin"),
    ("3-hang", "the breaker opens (503 breaker_open seen)"),
    ("5-refused", "no 500, no bare error, no dropped connection: GET /items/{item_id}"),
    ("after", "zero in flight, zero queued"),
)


def run_quick_loadtest(
    project: Path, reports: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "loadtest", "--profile", "quick", "--report-dir", str(reports)]
    leftovers = ("PYTEST_", "POOL_", "LOADTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(leftovers)}
    return subprocess.run(
        [*command, *extra],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def only_run_folder(reports: Path) -> Path:
    runs = [path for path in reports.iterdir() if path.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def verdict_of(run: Path) -> dict[str, Any]:
    verdict: dict[str, Any] = json.loads((run / "verdict.json").read_text())
    return verdict


def max_http2_connections(run: Path) -> int:
    """The most HTTP/2 connections any downstream's pool held, from the sampled timeline."""
    samples = [json.loads(line) for line in (run / "timeline.jsonl").read_text().splitlines()]
    return max(
        (
            view.get("pool", {}).get("http2", 0)
            for sample in samples
            for view in sample.get("downstreams", {}).values()
        ),
        default=0,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    stdout, stderr = result.stdout[-8000:], result.stderr[-3000:]
    return f"exit {result.returncode}\n{stdout}\n--- stderr ---\n{stderr}"


@pytest.mark.parametrize(
    ("http_client", "options"),
    [
        ("httpx", ()),  # HTTP/1.1 on the default engine, aiohttp
        ("httpx", ("--engine", "httpcore")),
        ("httpx2", ()),
        ("httpx", ("--tls",)),
    ],
    ids=["httpx", "httpx-httpcore", "httpx2", "httpx-tls-http2"],
)
def test_quick_profile_passes_on_the_baked_service(
    cookies_session: Any, tmp_path: Path, http_client: str, options: tuple[str, ...]
) -> None:
    tls = "--tls" in options
    project = bake_project(cookies_session, http_client=http_client)
    result = run_quick_loadtest(project, tmp_path, *options)
    run = only_run_folder(tmp_path)
    # Over TLS the service must really have multiplexed on HTTP/2 (ALPN), not fallen back.
    assert (max_http2_connections(run) > 0) == tls, explain(result)
    verdict = verdict_of(run)
    assert verdict["completed"], explain(result)
    assert verdict["verdicts"]
    broken = [f"{v['phase']}: {v['slo']}" for v in verdict["verdicts"] if not v["passed"]]
    assert broken == [], explain(result)
    assert result.returncode == 0, explain(result)
    chart = (run / "timeline.html").read_text()
    assert chart.count("<svg") == 1
    assert all(phase["name"] in chart for phase in verdict["phases"])
    for produced in ("locust.html", "locust_stats.csv", "timeline.jsonl", "client_timeline.jsonl"):
        assert (run / produced).stat().st_size > 0, produced
    assert "loadtest: PASS" in result.stdout


def test_naive_service_fails_and_the_broken_slos_are_named(
    cookies_session: Any, tmp_path: Path
) -> None:
    project = bake_project(cookies_session)
    naive = (
        f"{sys.executable} -m uvicorn naive_service.app:app --app-dir {NAIVE_SERVICE.parent} "
        "--host 127.0.0.1 --port {port} --log-level warning --no-access-log"
    )
    result = run_quick_loadtest(project, tmp_path, "--service-command", naive)
    assert result.returncode == 1, explain(result)
    verdict = verdict_of(only_run_folder(tmp_path))
    assert not verdict["passed"]
    broken = {(v["phase"], v["slo"]) for v in verdict["verdicts"] if not v["passed"]}
    assert set(NAIVE_MUST_BREAK) <= broken, explain(result)
    listed = result.stdout.split("SLO(s) broken:", 1)[-1]
    for phase, slo in broken:
        assert f"{phase}: {slo}" in listed, (phase, slo)
