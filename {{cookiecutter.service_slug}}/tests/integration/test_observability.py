"""Pool observability firing for real: exhaustion, leaks, orphans, metrics, the debug view.

Every event here is produced by real traffic to the bundled fault server on 127.0.0.1 and read
back from the JSON log lines the service wrote.
"""

from __future__ import annotations

import asyncio
import gc
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.downstream.cancellation import POOL_LEAKS_ON_CANCEL
from {{ cookiecutter.package_name }}.downstream.config import ObservabilitySettings
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstream.monitor import PoolMonitor
from {{ cookiecutter.package_name }}.downstream.pool_internals import (
    client_pool,
    orphaned_connections,
)
from {{ cookiecutter.package_name }}.log_config import configure_logging

from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import (
    downstreams_at,
    hold_one_then_overflow,
    log_events,
    one_downstream,
    running_service,
)
from tests.integration.service_process import service_process

pytestmark = pytest.mark.slow
JSON_LOGS = {"log_format": "json"}
THIS_FILE = Path(__file__).name


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in events if event["event"] == name]


def test_exhaustion_names_the_oldest_call_in_flight(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fault.set_fault("items", "slow", latency_ms=800)
    bulkhead = {"max_concurrency": 1, "max_queue": 0, "max_wait": 0}
    with running_service(fault, JSON_LOGS, bulkhead=bulkhead) as (url, _):
        assert hold_one_then_overflow(url) == [503, 200]
    [exhausted] = named(log_events(capsys.readouterr().out), "downstream.pool.exhausted")
    assert exhausted["downstream"] == "catalog"
    assert exhausted["cause"] == "bulkhead_queue_full"
    assert exhausted["in_flight"] == 1
    [oldest] = exhausted["oldest_calls"]
    assert oldest["method"] == "GET"
    assert oldest["route"] == "/items/{item_id}"
    assert oldest["attempt"] == 1
    assert oldest["age_seconds"] >= 0.1


@pytest.mark.anyio
async def test_stream_held_open_is_reported_with_its_call_site(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    watch = ObservabilitySettings(monitor_interval_seconds=0.05, leak_threshold_seconds=0.1)
    async with one_downstream(fault.base_url, observability=watch) as catalog:
        monitor = PoolMonitor([catalog], watch)
        monitor.start()
        try:
            opened_on_line = sys._getframe().f_lineno + 1
            async with catalog.stream("GET", "/items/{id}", path_params={"id": 1}) as response:
                await asyncio.sleep(0.3)  # held well past the threshold
                assert response.status_code == 200
        finally:
            await monitor.stop()
        assert catalog.open_streams.streams == {}
    [leak] = named(log_events(capsys.readouterr().out), "downstream.response.leaked")
    assert leak["kind"] == "held_open"
    assert leak["route"] == "/items/{id}"
    assert leak["call_site"].endswith(f"{THIS_FILE}:{opened_on_line}")


@pytest.mark.anyio
async def test_dropped_stream_is_reported_when_collected(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "info")
    limits = {"max_connections": 1, "max_keepalive_connections": 1}
    async with one_downstream(
        fault.base_url, limits=limits, bulkhead={"max_concurrency": 1}
    ) as catalog:
        context = catalog.stream("GET", "/items/{id}", path_params={"id": 2})
        response = await context.__aenter__()  # opened and never exited: a leak
        assert response.status_code == 200
        del context, response
        gc.collect()
        for _ in range(50):  # the event loop finalises the dropped generator
            await asyncio.sleep(0.01)
            if not catalog.open_streams.streams:
                break
        assert (await catalog.get("/items/3")).status_code == 200  # the slot came back
    [leak] = named(log_events(capsys.readouterr().out), "downstream.response.leaked")
    assert leak["kind"] == "garbage_collected"
    assert THIS_FILE in leak["call_site"]


async def cancellation_storm(client: httpx.AsyncClient, rng: random.Random) -> None:
    """200 calls on the raw client, each cancelled at a random point (httpcore #1093)."""
    calls = [asyncio.ensure_future(client.get(f"/items/{i}")) for i in range(200)]
    for call in calls:
        await asyncio.sleep(rng.uniform(0, 0.004))
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)


@pytest.mark.anyio
async def test_orphaned_connection_is_reproduced_then_repaired(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The raw client (calls outside Downstream, which repairs its own cancellations) leaks with
    httpcore 1.0.9; the monitor closes the orphan and the next call succeeds. httpcore2 does
    not leak at all."""
    configure_logging("json", "info")
    fault.set_fault("items", "slow", latency_ms=5)
    fields: dict[str, Any] = {
        "limits": {"max_connections": 1, "max_keepalive_connections": 1, "keepalive_expiry": 0.01},
        "bulkhead": {"max_concurrency": 1},
        "timeouts": {"pool": 0.3},
        "engine": "httpcore",  # the engine with the hole
    }
    watch = ObservabilitySettings(repair_orphans=True)
    async with one_downstream(fault.base_url, observability=watch, **fields) as catalog:
        pool = client_pool(catalog.client)
        rng = random.Random(1093)
        for _ in range(5):  # bounded: 5 storms of 200 cancellations at most
            await cancellation_storm(catalog.client, rng)
            if orphaned_connections(pool):
                break
        if not POOL_LEAKS_ON_CANCEL:
            assert orphaned_connections(pool) == []
            assert (await catalog.client.get("/items/next")).status_code == 200
            return
        assert len(orphaned_connections(pool)) == 1
        with pytest.raises(httpx.PoolTimeout):  # what #1093 does to the next call
            await catalog.client.get("/items/next")
        await PoolMonitor([catalog], watch).tick(catalog)
        assert orphaned_connections(pool) == []
        assert (await catalog.client.get("/items/next")).status_code == 200
        assert catalog.orphans_repaired == 1
    [repair] = named(log_events(capsys.readouterr().out), "downstream.pool.orphan_connection")
    assert repair["action"] == "closed"
    assert repair["downstream"] == "catalog"


def test_debug_view_drains_to_zero_after_a_burst(fault: RunningFaultServer) -> None:
    fault.set_fault("items", "slow", latency_ms=100)
    bulkhead = {"max_concurrency": 5, "max_queue": 50, "max_wait": 5}
    with running_service(fault, bulkhead=bulkhead) as (url, _):

        async def burst_while_watching() -> int:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                calls = [asyncio.ensure_future(client.get(f"/items/{i}")) for i in range(30)]
                peak = 0
                while not all(call.done() for call in calls):
                    view = (await client.get("/debug/downstreams")).json()["catalog"]
                    peak = max(peak, view["in_flight"])
                    await asyncio.sleep(0.02)
                assert all(call.result().status_code == 200 for call in calls)
                return peak

        peak = asyncio.run(burst_while_watching())
        view = httpx.get(f"{url}/debug/downstreams").json()["catalog"]
    assert 1 <= peak <= 5
    assert view["in_flight"] == 0
    assert view["queued"] == 0
    assert view["oldest_calls"] == []
    assert view["pool"]["requests_active"] == 0
    assert view["pool"]["requests_queued"] == 0
    assert view["pool"]["connecting"] == 0
    assert view["open_streams"] == 0


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text format."""
    series = name + "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"
    match = re.search("^" + re.escape(series) + r" (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


def test_metrics_move_under_load(fault: RunningFaultServer) -> None:
    with running_service(fault, bulkhead={"max_concurrency": 1, "max_queue": 0}) as (url, _):
        before = httpx.get(f"{url}/metrics").text
        ok_before = metric(before, "downstream_calls_total", downstream="catalog", outcome="ok")
        for i in range(5):
            assert httpx.get(f"{url}/items/{i}").status_code == 200
        fault.set_fault("items", "slow", latency_ms=300)

        async def overflow() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                await asyncio.gather(*(client.get(f"/items/{i}") for i in range(4)))

        asyncio.run(overflow())
        after = httpx.get(f"{url}/metrics").text
    ok_after = metric(after, "downstream_calls_total", downstream="catalog", outcome="ok")
    assert ok_after - ok_before == 6
    assert metric(after, "downstream_calls_total", downstream="catalog", outcome="shed") >= 3
    assert metric(after, "downstream_call_duration_seconds_count", downstream="catalog") >= 6
    assert "downstream_pool_connections" in after


def test_metrics_agree_across_two_workers(fault: RunningFaultServer, tmp_path: Path) -> None:
    settings = {
        "WORKERS": "2",
        "ACCESS_LOG": "false",
        **downstreams_at(fault.base_url),
    }
    with service_process(settings, tmp_path) as service:
        service.wait_until_ready()
        sent = 40
        for i in range(sent):  # a new connection each: uvicorn spreads them over the workers
            assert httpx.get(f"{service.base_url}/items/{i}").status_code == 200
        scrapes = [httpx.get(f"{service.base_url}/metrics").text for _ in range(8)]
        service.terminate()
        assert service.wait() == 0
    counts = {
        metric(s, "downstream_calls_total", downstream="catalog", outcome="ok") for s in scrapes
    }
    assert counts == {float(sent)}  # every scrape, whichever worker answered, sees all calls
    assert fault.stats()["items"] == sent


def test_every_request_gets_one_json_access_line_without_its_query(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_service(fault, {**JSON_LOGS, "access_log": True}) as (url, _):
        response = httpx.get(f"{url}/items/7?token=s3cr3t")
        missing = httpx.get(f"{url}/nowhere")
    lines = [e for e in log_events(capsys.readouterr().out) if e.get("logger") == "access"]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", "/items/7", 200),
        ("GET", "/nowhere", 404),
    ]
    assert lines[0]["request_id"] == response.headers["x-request-id"]
    assert lines[1]["request_id"] == missing.headers["x-request-id"]
    assert all(e["duration_ms"] > 0 and e["level"] == "info" for e in lines)


def test_secrets_never_reach_a_log_line(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = {
        "authorization": "Bearer s3cr3t-authorization",
        "x-api-key": "s3cr3t-api-key",
    }
    query = "token=s3cr3t-token&api_key=s3cr3t-key&password=s3cr3t-pass&signature=s3cr3t-sig"
    catalog = {"headers": secrets}
    with running_service(fault, {**JSON_LOGS, "access_log": True}, **catalog) as (url, _):
        inbound = {
            "Authorization": "Bearer s3cr3t-inbound",
            "Cookie": "session=s3cr3t-cookie",
            "Proxy-Authorization": "Basic s3cr3t-proxy",
        }
        assert httpx.get(f"{url}/items/1?{query}", headers=inbound).status_code == 200
        view = httpx.get(f"{url}/debug/downstreams").text
        assert "s3cr3t" not in view  # the effective configuration shows no header secrets

    async def outbound_with_secret_query() -> None:
        import logging

        logging.getLogger("httpx").setLevel(logging.INFO)  # httpx logs every URL at INFO
        try:
            async with one_downstream(fault.base_url) as downstream:
                params = {"access_token": "s3cr3t-url-token", "client_secret": "s3cr3t-client"}
                await downstream.get("/items/{id}", path_params={"id": 1}, params=params)
        finally:
            logging.getLogger("httpx").setLevel(logging.WARNING)

    asyncio.run(outbound_with_secret_query())
    output = capsys.readouterr().out
    assert "s3cr3t" not in output
    assert "[REDACTED]" in output  # the lines were there, with their secrets masked
