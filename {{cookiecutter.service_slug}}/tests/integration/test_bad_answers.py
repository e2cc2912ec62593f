"""What a misbehaving downstream sends is a 502 naming it, and costs one log line, not one a call.

Real fault server, real service on uvicorn; the log lines are the service's own JSON output.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.downstream.errors import DownstreamBadBody
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstream.views import snapshot
from {{ cookiecutter.package_name }}.settings import load_settings

from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import log_events, one_downstream, running_service
from tests.live import serve

CALLS = 60
# One interval longer than any test: what is counted is lines per interval, not the machine's speed.
LONG_INTERVAL = {"failure_log_interval_seconds": 60.0}
# Room for every call at once, however slow the machine: these tests are not about shedding.
ROOMY = {"max_concurrency": 10, "max_queue": CALLS, "max_wait": 10.0}
JSON_LOGS = {"log_format": "json", "observability": LONG_INTERVAL}
NO_BREAKER = {"minimum_calls": 100_000}  # every call must reach the misbehaving downstream
ONE_ATTEMPT = {"max_attempts": 1}  # each answer is that attempt's, not the retry budget's


def statuses_and_reasons(url: str, path: str) -> list[tuple[int, str | None]]:
    async def call_all() -> list[tuple[int, str | None]]:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            responses = await asyncio.gather(*(client.get(path) for _ in range(CALLS)))
        return [(r.status_code, r.json().get("reason")) for r in responses]

    return asyncio.run(call_all())


def test_a_200_that_is_not_json_is_a_502_for_every_call(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fault.set_fault("items", "malformed")
    with running_service(fault, JSON_LOGS, breaker=NO_BREAKER, bulkhead=ROOMY) as (url, app):
        answers = statuses_and_reasons(url, "/items/1")
        catalog = app.state.downstreams["catalog"]
        assert catalog.outcomes["bad_body"] == CALLS  # failures, for the breaker too
    assert set(answers) == {(502, "bad_body")}
    events = [e["event"] for e in log_events(capsys.readouterr().out)]
    assert "request.unhandled_exception" not in events


@pytest.mark.parametrize("mode", ["truncated", "reset_stream", "bad_head"])
def test_a_broken_protocol_is_a_502_and_strands_nothing(
    any_transport: tuple[RunningFaultServer, Any], mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A body shorter than its Content-Length, a reset stream (HTTP/2: RST_STREAM, the
    connection lives on) and an unparsable response head are each a bad gateway."""
    fault, transport = any_transport
    fault.set_fault("items", mode)
    settings = {"breaker": NO_BREAKER, "bulkhead": ROOMY, "retry": ONE_ATTEMPT, **transport}
    with running_service(fault, JSON_LOGS, **settings) as (url, app):
        answers = statuses_and_reasons(url, "/items/1")
        catalog = app.state.downstreams["catalog"]
        assert catalog.outcomes["bad_gateway"] == CALLS
        assert catalog.bulkhead.in_flight == 0
        assert snapshot(catalog)["pool"]["active"] == 0
        fault.clear_faults()
        assert statuses_and_reasons(url, "/items/1") == [(200, None)] * CALLS
    assert set(answers) == {(502, "bad_gateway")}
    events = [e["event"] for e in log_events(capsys.readouterr().out)]
    assert "request.unhandled_exception" not in events


@pytest.mark.anyio
async def test_connections_the_downstream_closed_while_idle_are_never_sent_on(
    any_transport: tuple[RunningFaultServer, Any],
) -> None:
    """A downstream that closes idle connections sooner than KEEPALIVE_EXPIRY: with one attempt
    per call (no retry to hide it), every call still gets a live connection."""
    fault, transport = any_transport
    fault.set_fault("*", "idle_close", idle_ms=20)
    async with one_downstream(fault.base_url, retry=ONE_ATTEMPT, **transport) as catalog:
        for n in range(10):
            await catalog.get(f"/items/{n}")
            await asyncio.sleep(0.1)  # idle in the pool: the server closes it
        assert catalog.outcomes["ok"] == 10
    assert fault.stats()["connections"] == 10


def test_a_failing_downstream_writes_one_warning_a_second_not_one_a_call(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fault.set_fault("items", "error", error_rate=1.0, status=503)
    no_budget = {
        "budget_ratio": 0.0,
        "budget_min_per_second": 0.0,
        "backoff_base": 0.001,
        "throttle_max_tokens": 0,  # the budget's line is the one counted here
    }
    service = running_service(fault, JSON_LOGS, retry=no_budget, breaker=NO_BREAKER, bulkhead=ROOMY)
    with service as (url, _):
        answers = statuses_and_reasons(url, "/items/1")
    assert set(answers) == {(503, "retry_budget")}
    warnings = [
        event
        for event in log_events(capsys.readouterr().out)
        if event["level"] in ("warning", "error")
    ]
    [exhausted] = [e for e in warnings if e["event"] == "downstream.retry.budget_exhausted"]
    assert exhausted["suppressed_since_last"] == 0  # the first; the other 59 are counted next
    assert len(warnings) == 1, warnings


def test_calls_cancelled_beside_a_failing_one_write_each_warning_once_per_interval(
    any_transport: tuple[RunningFaultServer, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """``/items/{id}/details`` with the item malformed and the price slow: each call cancels
    its price call in flight. Over HTTP/2 the repair of each cancelled stream used to write a
    warning of its own, one a call (3.3 lines a second in the load test's malformed phase)."""
    fault, transport = any_transport
    fault.set_fault("items", "malformed")
    fault.set_fault("prices", "slow", latency_ms=50)
    every = {"breaker": NO_BREAKER, "bulkhead": ROOMY, **transport}
    with running_service(fault, JSON_LOGS, every=every) as (url, app):
        pricing = app.state.downstreams["pricing"]
        answers: list[tuple[int, str | None]] = []
        for _ in range(5):  # bounded: until two cancellations needed a repair
            answers += statuses_and_reasons(url, "/items/1/details")
            if pricing.orphans_repaired >= 2:
                break
        repaired = pricing.orphans_repaired
    assert set(answers) == {(502, "bad_body")}
    events = log_events(capsys.readouterr().out)
    warnings = [e for e in events if e["level"] in ("warning", "error")]
    lines = Counter((e["event"], e.get("downstream")) for e in warnings)  # each downstream's own
    assert all(count == 1 for count in lines.values()), (lines, f"{repaired} repaired", warnings)


@pytest.mark.anyio
async def test_a_body_over_the_limit_is_a_bad_body(fault: RunningFaultServer) -> None:
    async with one_downstream(fault.base_url, max_body_bytes=64) as catalog:
        with pytest.raises(DownstreamBadBody, match="larger than 64 bytes"):
            await catalog.get("/items/1")  # its JSON is ~200 bytes
        assert catalog.outcomes["bad_body"] == 1
        assert catalog.bulkhead.in_flight == 0


def test_an_unhandled_exception_logs_one_traceback_per_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings(
        environment="development", log_format="json", observability=LONG_INTERVAL
    )
    app: FastAPI = create_app(settings)

    @app.get("/broken/{n}")
    async def broken(n: int) -> dict[str, Any]:
        raise RuntimeError("a bug on every request")

    with serve(app) as url:
        answers = statuses_and_reasons(url, "/broken/1")
    assert {status for status, _ in answers} == {500}
    logged = [
        event
        for event in log_events(capsys.readouterr().out)
        if event["event"] == "request.unhandled_exception"
    ]
    assert len(logged) == 1  # 60 calls within one interval
    [line] = logged
    assert line["route"] == "/broken/{n}"
    assert line["exception_type"] == "RuntimeError"
    assert "a bug on every request" in line["exception"]  # the traceback, once
