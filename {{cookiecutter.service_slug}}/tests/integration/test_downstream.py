"""The downstream pipeline against real servers on 127.0.0.1 (fault server, uvicorn, TLS + h2).

Each test drives real sockets; counts come from the fault server's side, so "not retried" and
"never touched the network" are measured where the requests would arrive.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.downstream.attempts import BACKSTOP_GRACE_SECONDS
from {{ cookiecutter.package_name }}.downstream.cancellation import POOL_LEAKS_ON_CANCEL
from {{ cookiecutter.package_name }}.downstream.errors import (
    DownstreamBadGateway,
    DownstreamError,
    DownstreamUnavailable,
    UnsafeDownstreamPath,
)
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstreams import Catalog, declared
from {{ cookiecutter.package_name }}.settings import load_settings

from loadtest.fault_server.harness import RunningFaultServer, serve_in_thread
from tests.integration.conftest import log_events, one_downstream, running_service, wait_until
from tests.live import serve

pytestmark = pytest.mark.slow
NO_BREAKER = {"minimum_calls": 100_000}
# The retry tokens off: these tests count the retries of one rule at a time (the tokens have
# their own, test_retry_throttle.py).
FAST_BACKOFF = {"backoff_base": 0.001, "backoff_cap": 0.005, "throttle_max_tokens": 0}


async def burst(
    base_url: str, paths: list[str], **headers: str
) -> list[tuple[httpx.Response, float]]:
    """Send every path at once; return each response with how long it took."""
    limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=len(paths))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def timed(path: str) -> tuple[httpx.Response, float]:
            started = time.perf_counter()
            response = await client.get(path, headers=headers)
            return response, time.perf_counter() - started

        return list(await asyncio.gather(*(timed(p) for p in paths)))


def assert_problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["reason"] == reason
    assert body["downstream"] == "catalog"
    assert "http://" not in body["detail"]  # no URLs in error bodies
    return body


def test_example_routes_serve_and_degrade(fault: RunningFaultServer) -> None:
    with running_service(fault) as (url, _):
        item = httpx.get(f"{url}/items/42").json()
        assert item["id"] == "42"
        assert httpx.get(f"{url}/items/42/price").json()["price"] == 9.99
        assert httpx.get(f"{url}/items/42/details").json()["degraded"] is False
        fault.set_fault("prices", "error", error_rate=1.0, status=500)
        details = httpx.get(f"{url}/items/42/details")
        assert details.status_code == 200
        assert details.json()["price"] is None
        assert details.json()["degraded"] is True


def test_slow_downstream_is_shed_at_once_not_queued(fault: RunningFaultServer) -> None:
    fault.set_fault("items", "slow", latency_ms=1500)
    bulkhead = {"max_concurrency": 2, "max_queue": 2, "max_wait": 0.2}
    limits = {"max_connections": 2, "max_keepalive_connections": 2}
    with running_service(fault, bulkhead=bulkhead, limits=limits) as (url, _):
        results = asyncio.run(burst(url, [f"/items/{i}" for i in range(12)]))
        health = httpx.get(f"{url}/healthz")
    assert health.status_code == 200
    ok = [r for r, _ in results if r.status_code == 200]
    shed = [(r, elapsed) for r, elapsed in results if r.status_code == 503]
    assert len(ok) == 2
    assert len(shed) == 10
    for response, elapsed in shed:
        assert_problem(response, 503, "shed")
        assert int(response.headers["retry-after"]) >= 1
        assert elapsed < 1.5  # answered before the slow calls in flight could finish
    assert fault.stats()["items"] == 2  # shed calls never reached the downstream


def test_hanging_downstream_becomes_504_at_the_deadline(fault: RunningFaultServer) -> None:
    fault.set_fault("items", "hang")
    with running_service(fault, deadline_seconds=1.0) as (url, _):
        started = time.perf_counter()
        response = httpx.get(f"{url}/items/1", timeout=30)
        elapsed = time.perf_counter() - started
        assert httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    assert_problem(response, 504, "timeout")
    assert 0.9 <= elapsed < 5


def test_inbound_deadline_caps_the_call_and_is_forwarded(fault: RunningFaultServer) -> None:
    downstreams = {name: {"base_url": fault.base_url} for name in declared.names()}
    app = create_app(load_settings(downstreams=downstreams))

    @app.get("/echo")  # what the fault server saw, which it echoes
    async def echo(catalog: Catalog) -> Any:
        return (await catalog.get("/items/7")).json()

    with serve(app) as url:
        body = httpx.get(f"{url}/echo", headers={"x-request-deadline-ms": "800"}).json()
    assert 0 < int(body["deadline_ms"]) <= 800


def test_retry_budget_bounds_amplification(fault: RunningFaultServer) -> None:
    fault.set_fault("items", "error", error_rate=0.5, status=503)
    retry = {"max_attempts": 3, "budget_ratio": 0.2, "budget_min_per_second": 0, **FAST_BACKOFF}
    sent = 200
    with running_service(fault, retry=retry, breaker=NO_BREAKER) as (url, _):
        for start in range(0, sent, 10):
            asyncio.run(burst(url, [f"/items/{i}" for i in range(start, start + 10)]))
    received = fault.stats()["items"]
    assert sent < received <= sent * 1.2 + 2, received


def test_retry_after_is_honoured_never_early(fault: RunningFaultServer) -> None:
    fault.set_fault("items", "throttle", retry_after=1)
    retry = {"max_attempts": 2, "retry_after_cap": 5, **FAST_BACKOFF}
    with running_service(fault, retry=retry, breaker=NO_BREAKER) as (url, _):
        started = time.perf_counter()
        response = httpx.get(f"{url}/items/1", timeout=30)
        elapsed = time.perf_counter() - started
    assert_problem(response, 503, "throttled")
    assert fault.stats()["items"] == 2
    assert elapsed >= 1.0  # the retry waited for Retry-After


def test_retry_after_above_the_cap_is_not_retried(fault: RunningFaultServer) -> None:
    fault.set_fault("items", "throttle", retry_after=30)
    with running_service(fault, retry={"retry_after_cap": 5}, breaker=NO_BREAKER) as (url, _):
        response = httpx.get(f"{url}/items/1", timeout=30)
    assert_problem(response, 503, "throttled")
    assert response.headers["retry-after"] == "30"
    assert fault.stats()["items"] == 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connecting is refused


def test_refused_connections_open_the_breaker(fault: RunningFaultServer) -> None:
    breaker = {"minimum_calls": 5, "open_duration": 30}
    settings: dict[str, Any] = {"base_url": f"http://127.0.0.1:{closed_port()}", "breaker": breaker}
    with running_service(fault, **settings, retry={"max_attempts": 1}) as (url, app):
        refused = [httpx.get(f"{url}/items/{i}") for i in range(5)]
        for response in refused:
            assert_problem(response, 502, "bad_gateway")
        fast = httpx.get(f"{url}/items/9")
        assert_problem(fast, 503, "breaker_open")
        assert int(fast.headers["retry-after"]) >= 29
        assert app.state.downstreams["catalog"].breaker.state == "open"


def test_open_breaker_fails_without_touching_the_network(fault: RunningFaultServer) -> None:
    fault.set_fault("items", "error", error_rate=1.0, status=500)
    breaker = {"minimum_calls": 5, "open_duration": 30}
    with running_service(fault, breaker=breaker) as (url, _):
        for i in range(5):
            assert_problem(httpx.get(f"{url}/items/{i}"), 502, "bad_gateway")
        fault.clear_faults()
        fault.reset_stats()
        for i in range(20):
            assert_problem(httpx.get(f"{url}/items/{i}"), 503, "breaker_open")
    assert fault.stats()["total"] == 0


def test_a_quiet_breaker_turns_half_open_by_itself_and_recovers_from_the_first_second(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a fault and an open period with no traffic at all, the breaker is already
    half-open, and renewed traffic at concurrency 10 succeeds from its first calls (the first
    100, about a second of traffic here)."""
    fault.set_fault("items", "error", error_rate=1.0, status=500)
    breaker = {"minimum_calls": 3, "open_duration": 0.3, "half_open_calls": 10}
    with running_service(fault, {"log_format": "json"}, breaker=breaker) as (url, app):
        for i in range(3):
            httpx.get(f"{url}/items/{i}")
        fault.clear_faults()
        output: list[str] = []  # quiet: no call, no read of the breaker, only its log

        def changes() -> list[tuple[str, str]]:
            output.append(capsys.readouterr().out)
            text = "".join(output)
            return [
                (event["old"], event["new"])
                for event in log_events(text[: text.rfind("\n") + 1])  # whole lines only
                if event["event"] == "downstream.breaker.state_changed"
            ]

        wait_until(lambda: len(changes()) >= 2, timeout_s=5)  # the 0.3 s timer, however late
        assert changes() == [("closed", "open"), ("open", "half_open")]
        view = httpx.get(f"{url}/debug/downstreams").json()["catalog"]["breaker"]
        assert view["state"] == "half_open"
        statuses = asyncio.run(traffic(url, callers=10, calls_each=10))
        assert app.state.downstreams["catalog"].breaker.state == "closed"
    assert statuses.count(200) / len(statuses) >= 0.99, statuses


def test_with_a_probe_path_a_quiet_breaker_closes_before_traffic_returns(
    fault: RunningFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The service GETs ``PROBE_PATH`` itself while half-open: failing probes reopen the breaker,
    and once the downstream heals the probes close it, with not one caller's call. The open
    period outlasts the inbound deadline of the call that opened it: a probe must not inherit
    it (it did, through the timer's context, and spun on "deadline already passed")."""
    fault.set_fault("*", "error", error_rate=1.0, status=500)
    breaker = {
        "minimum_calls": 3,
        "open_duration": 0.2,
        "open_duration_max": 0.4,
        "half_open_calls": 3,
        "probe_path": "/healthz",
    }
    quick_callers = {"log_format": "json", "default_deadline_seconds": 0.15}
    with running_service(fault, quick_callers, breaker=breaker) as (url, _):
        for i in range(3):
            httpx.get(f"{url}/items/{i}")
        wait_until(lambda: fault.stats()["healthz"] >= 1)  # a probe failed: open again
        callers_calls = fault.stats()["items"]
        fault.clear_faults()
        # Through the service, on its event loop: see ``catalog_view``.
        wait_until(lambda: catalog_view(url)["breaker"]["state"] == "closed", timeout_s=15)
        view = catalog_view(url)
    assert view["breaker"]["state"] == "closed"
    assert fault.stats()["items"] == callers_calls  # no caller since: the probes closed it
    # Three verdicts close it with at most one failure (the clear may land mid-period, after a
    # probe failed): at least two probes succeeded. Only a probe can have (every caller's call
    # failed), so the service's own count says it; the fault server's cannot, as probes
    # failing before the clear and succeeding after it are all "healthz" there.
    assert view["outcomes"]["ok"] >= 2, view["outcomes"]
    changes = [
        (event["old"], event["new"])
        for event in log_events(capsys.readouterr().out)
        if event["event"] == "downstream.breaker.state_changed"
    ]
    assert ("open", "half_open") in changes
    assert ("half_open", "open") in changes
    assert changes[-1] == ("half_open", "closed")


def catalog_view(url: str) -> dict[str, Any]:
    """The catalog's ``/debug/downstreams`` view, read on the service's loop as a person reads
    it. A service's objects belong to its loop's thread: polled from the test's thread, a breaker
    read once made the open -> half-open transition there, where the hook could not start the
    health probe, and the loop's timer then found nothing to do (breaker reads are pure now)."""
    view: dict[str, Any] = httpx.get(f"{url}/debug/downstreams").json()["catalog"]
    return view


async def traffic(url: str, *, callers: int, calls_each: int) -> list[int]:
    """``callers`` clients each calling back to back ``calls_each`` times; every status."""
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def caller(n: int) -> None:
            for _ in range(calls_each):
                statuses.append((await client.get(f"/items/{n}")).status_code)

        await asyncio.gather(*(caller(n) for n in range(callers)))
    return statuses


@pytest.mark.anyio
async def test_post_is_never_retried_unless_idempotency_keyed(
    fault: RunningFaultServer, engine: str
) -> None:
    fault.set_fault("items", "error", error_rate=1.0, status=503)
    retry = {"max_attempts": 3, **FAST_BACKOFF}
    async with one_downstream(
        fault.base_url, engine=engine, retry=retry, breaker=NO_BREAKER
    ) as catalog:
        with pytest.raises(DownstreamBadGateway):
            await catalog.request("POST", "/items/{id}", path_params={"id": 1}, json={})
        assert fault.stats()["items"] == 1
        fault.reset_stats()
        with pytest.raises(DownstreamBadGateway):
            await catalog.request(
                "POST",
                "/items/{id}",
                path_params={"id": 1},
                json={},
                headers={"Idempotency-Key": "order-1"},
            )
        assert fault.stats()["items"] == 3
        fault.reset_stats()
        with pytest.raises(DownstreamBadGateway):
            await catalog.request("PUT", "/items/{id}", path_params={"id": 1}, json={})
        assert fault.stats()["items"] == 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("http://169.254.169.254/latest", None),
        ("//evil.example/x", None),
        ("/items/{id}", {"id": ".."}),
        ("/items/{id}", {"id": "../../admin"}),
        ("/items/{id}", {"id": "%2e%2e"}),
        ("/items/{id}", {"id": "..\\admin"}),
        ("/items/../admin", None),
        ("/items/{id}?debug=1", {"id": 1}),
        ("/items/{id}", {"other": 1}),
    ],
)
async def test_requests_cannot_leave_the_configured_origin(
    fault: RunningFaultServer, path: str, params: dict[str, object] | None
) -> None:
    async with one_downstream(fault.base_url + "/api") as catalog:
        with pytest.raises(UnsafeDownstreamPath):
            await catalog.get(path, path_params=params)
    assert fault.stats()["total"] == 0


def test_path_traversal_through_the_service_is_a_400(fault: RunningFaultServer) -> None:
    with running_service(fault) as (url, _):
        assert httpx.get(f"{url}/items/..%2F..%2Fadmin").status_code == 404  # not one segment
        response = httpx.get(f"{url}/items/%2E%2E")  # encoded so the client keeps it: ".."
        assert response.status_code == 400
        assert response.json()["reason"] == "unsafe_path"
        assert httpx.get(f"{url}/items/a%20b").json()["id"] == "a b"  # encoded, not refused
    assert fault.stats()["items"] == 1


@pytest.mark.anyio
async def test_cancelled_calls_never_leak_the_pool(fault: RunningFaultServer, engine: str) -> None:
    """httpcore #1093: a call cancelled while the pool assigns it a new connection leaks it.
    With one connection, 200 cancellations at random points, the next call must still work."""
    fault.set_fault("items", "slow", latency_ms=5)
    fields: dict[str, Any] = {
        "limits": {"max_connections": 1, "max_keepalive_connections": 1, "keepalive_expiry": 0.01},
        "bulkhead": {"max_concurrency": 1, "max_queue": 500, "max_wait": 10},
        "breaker": NO_BREAKER,
    }
    rng = random.Random(1093)
    async with one_downstream(fault.base_url, engine=engine, **fields) as catalog:
        calls = [asyncio.ensure_future(catalog.get(f"/items/{i}")) for i in range(200)]
        for call in calls:
            await asyncio.sleep(rng.uniform(0, 0.004))
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        response = await catalog.get("/items/last")
        assert response.status_code == 200
        assert catalog.bulkhead.in_flight == 0
        cancelled = sum(call.cancelled() for call in calls)
        assert 0 < catalog.outcomes["cancelled"] <= cancelled  # those cancelled once admitted


@pytest.mark.anyio
async def test_cancelled_body_reads_never_strand_a_request(
    fault: RunningFaultServer, engine: str
) -> None:
    """A cancellation landing inside the response's close leaves httpcore 1.0.9's request in
    the pool with its connection ACTIVE for good (measured: 3 of 4 connections stuck after
    3,000 cancellations, before the repair). Bodies drip, so cancellations land mid-read and at
    the end of the body; afterwards the pool must hold no request and no busy connection."""
    fault.set_fault("items", "drip", drip_chunks=3, drip_interval_ms=1)
    fields: dict[str, Any] = {
        "limits": {"max_connections": 4, "max_keepalive_connections": 4},
        "bulkhead": {"max_concurrency": 4, "max_queue": 500, "max_wait": 10},
        "breaker": NO_BREAKER,
    }
    rng = random.Random(1094)
    async with one_downstream(fault.base_url, engine=engine, **fields) as catalog:
        for _ in range(4):  # bounded: 1,200 cancelled calls
            calls = [asyncio.ensure_future(catalog.get(f"/items/{i}")) for i in range(300)]
            for call in calls:
                await asyncio.sleep(rng.uniform(0, 0.003))
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
        while catalog.repair.pending:  # repairs close sockets in the background
            await asyncio.gather(*catalog.repair.pending)
        stats = catalog.pool_stats()
        assert (stats.requests_active, stats.requests_queued, stats.active) == (0, 0, 0)
        assert catalog.bulkhead.in_flight == 0
        fault.set_fault("items", "healthy")
        replies = await asyncio.gather(*(catalog.get(f"/items/{i}") for i in range(8)))
        assert [reply.status_code for reply in replies] == [200] * 8


@pytest.mark.anyio
async def test_a_call_cancelled_twice_does_not_keep_its_connection(
    fault: RunningFaultServer, engine: str
) -> None:
    """Cancelled while it waits for headers, then again inside its clean-up, a call leaves
    httpcore 1.0.9's HTTP/1.1 connection ACTIVE with no request, for good (deterministic: a
    TaskGroup sibling failing while the client disconnects does this). With one connection the
    next call would hit PoolTimeout; the repair closes it. On aiohttp nothing is left behind."""
    fault.set_fault("items", "slow", latency_ms=300)
    fields: dict[str, Any] = {
        "limits": {"max_connections": 1, "max_keepalive_connections": 1},
        "bulkhead": {"max_concurrency": 1},
        "timeouts": {"pool": 0.5},
        "breaker": NO_BREAKER,
    }
    async with one_downstream(fault.base_url, engine=engine, **fields) as catalog:
        for attempt in range(3):
            call = asyncio.ensure_future(catalog.get(f"/items/{attempt}"))
            for _ in range(200):  # bounded (2 s): until it runs on its connection
                await asyncio.sleep(0.01)
                if catalog.pool_stats().active == 1:
                    break
            call.cancel()  # waiting for the response headers (the server takes 300 ms)
            await asyncio.sleep(0)  # it starts its clean-up ...
            call.cancel()  # ... and is cancelled again inside it
            await asyncio.gather(call, return_exceptions=True)
            while catalog.repair.pending:
                await asyncio.gather(*catalog.repair.pending)
            assert catalog.pool_stats().active == 0
        fault.set_fault("items", "healthy")
        assert (await catalog.get("/items/next")).status_code == 200
        leaks = POOL_LEAKS_ON_CANCEL and engine == "httpcore"
        assert catalog.orphans_repaired == (3 if leaks else 0)


@pytest.mark.anyio
async def test_streams_always_give_their_connection_back(
    fault: RunningFaultServer, engine: str
) -> None:
    limits = {"max_connections": 1, "max_keepalive_connections": 1}
    bulkhead = {"max_concurrency": 1}
    async with one_downstream(
        fault.base_url, engine=engine, limits=limits, bulkhead=bulkhead
    ) as catalog:

        async def give_up_reading(item: int) -> None:
            async with catalog.stream("GET", "/items/{id}", path_params={"id": item}) as response:
                assert response.status_code == 200
                raise RuntimeError("reader gave up")

        for i in range(3):
            with pytest.raises(RuntimeError, match="reader gave up"):
                await give_up_reading(i)
        assert (await catalog.get("/items/4")).json()["id"] == "4"


@pytest.fixture
def tls_fault() -> Any:
    with serve_in_thread(tls=True) as server:
        yield server


@pytest.mark.anyio
async def test_http2_over_tls_multiplexes_and_is_bounded(tls_fault: RunningFaultServer) -> None:
    pytest.importorskip("h2")
    assert tls_fault.ca_path is not None
    fields: dict[str, Any] = {
        "http2": True,
        "ca_bundle": str(tls_fault.ca_path),
        "bulkhead": {"max_concurrency": 5, "max_queue": 0, "max_wait": 0},
    }
    async with one_downstream(tls_fault.base_url, **fields) as catalog:
        response = await catalog.get("/items/1")
        assert response.http_version == "HTTP/2"
        stats = catalog.pool_stats()
        assert (stats.http2, stats.idle) == (1, 1)  # what /debug/downstreams and metrics show
        tls_fault.set_fault("items", "slow", latency_ms=300)
        outcomes = await asyncio.gather(
            *(catalog.get(f"/items/{i}") for i in range(40)), return_exceptions=True
        )
    ok = [o for o in outcomes if isinstance(o, httpx.Response) and o.status_code == 200]
    shed = [o for o in outcomes if isinstance(o, DownstreamUnavailable) and o.reason == "shed"]
    assert len(ok) == 5  # streams in flight never exceed the bulkhead
    assert len(shed) == 35


async def call_for(catalog: Any, seconds: float, callers: int) -> tuple[list[float], list[bool]]:
    """``callers`` tasks calling back to back for ``seconds``: each call's duration and success."""
    durations: list[float] = []
    succeeded: list[bool] = []
    stop = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            try:
                await catalog.get("/items/1")
            except DownstreamError:
                succeeded.append(False)
                await asyncio.sleep(0.01)  # a failure is instant: let the others run
            else:
                succeeded.append(True)
            durations.append(time.monotonic() - started)

    async with asyncio.timeout(seconds + 30):  # a wedged call fails the test, not the run
        await asyncio.gather(*(caller() for _ in range(callers)))
    return durations, succeeded


@pytest.mark.anyio
async def test_a_lowered_http2_stream_limit_never_outlives_the_deadline(
    tls_fault: RunningFaultServer,
) -> None:
    """The downstream lowers MAX_CONCURRENT_STREAMS to 1 on the live connection while 10 calls
    are in flight (httpcore 1.0.9 deadlocks its reader there). Every call still ends by its
    deadline, and once the limit is back, calls succeed again: nothing stays wedged. Three
    rounds: the broken stream accounting the deadlock can leave behind shows up in about one
    round in three."""
    pytest.importorskip("h2")
    assert tls_fault.ca_path is not None
    deadline = 1.0
    fields: dict[str, Any] = {
        "http2": True,
        "ca_bundle": str(tls_fault.ca_path),
        "deadline_seconds": deadline,
        "breaker": NO_BREAKER,  # this test is about the pool, not about shedding a failing peer
    }
    async with one_downstream(tls_fault.base_url, **fields) as catalog:
        for _ in range(3):
            calls = asyncio.create_task(call_for(catalog, 2.0, callers=10))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(tls_fault.set_fault, "*", "streams", max_streams=1)
            during, _ = await calls
            await asyncio.to_thread(tls_fault.clear_faults)
            after, succeeded = await call_for(catalog, 1.0, callers=10)
            assert catalog.bulkhead.in_flight == 0
            # The backstop ends what httpx does not, BACKSTOP_GRACE_SECONDS after the deadline;
            # half a second more for a loaded machine. A wedged call takes seconds.
            assert max(during + after) < deadline + BACKSTOP_GRACE_SECONDS + 0.5
            assert len(succeeded) >= 50
            assert sum(succeeded) / len(succeeded) >= 0.99


@pytest.fixture
def goaway_fault() -> Any:
    with serve_in_thread(tls=True, goaway_after=50) as server:
        yield server


@pytest.mark.anyio
async def test_goaway_is_survived_and_never_duplicates_a_post(
    goaway_fault: RunningFaultServer,
) -> None:
    """The server sends GOAWAY every 50 requests per connection and drops the connection.
    Idempotent calls are retried through it; a POST is retried only when the GOAWAY's
    last_stream_id proves the server never processed it, so none is ever received twice."""
    pytest.importorskip("h2")
    assert goaway_fault.ca_path is not None
    fields: dict[str, Any] = {
        "http2": True,
        "ca_bundle": str(goaway_fault.ca_path),
        "bulkhead": {"max_concurrency": 20, "max_queue": 500, "max_wait": 10},
        "breaker": NO_BREAKER,
        # The retry tokens on: a retry of a request the GOAWAY refused is never throttled.
        "retry": {"budget_min_per_second": 20, "backoff_base": 0.001, "backoff_cap": 0.005},
    }
    async with one_downstream(goaway_fault.base_url, **fields) as catalog:
        gets = await asyncio.gather(*(catalog.get(f"/items/{i}") for i in range(200)))
        assert {response.status_code for response in gets} == {200}
        assert {r.http_version for r in gets} == {"HTTP/2"}
        goaway_fault.reset_stats()
        retries_before = dict(catalog.retry.retries_by_reason)
        posts = await asyncio.gather(
            *(
                catalog.request("POST", "/items/{i}", path_params={"i": i}, json={})
                for i in range(200)
            ),
            return_exceptions=True,
        )
        post_retries = {
            reason: count - retries_before.get(reason, 0)
            for reason, count in catalog.retry.retries_by_reason.items()
            if count != retries_before.get(reason, 0)
        }
    received = goaway_fault.stats()["items"]
    succeeded = sum(isinstance(p, httpx.Response) for p in posts)
    assert received <= 200  # no POST reached the application twice
    assert succeeded <= received
    assert set(post_retries) <= {"goaway_unprocessed"}


@pytest.mark.anyio
async def test_tls_verification_is_on_by_default(tls_fault: RunningFaultServer) -> None:
    async with one_downstream(tls_fault.base_url) as catalog:  # the test CA is not trusted
        with pytest.raises(DownstreamBadGateway, match="could not connect"):
            await catalog.get("/items/1")


def test_only_the_registry_constructs_clients() -> None:
    import {{ cookiecutter.package_name }} as package

    source_root = Path(package.__file__).parent
    constructing = sorted(
        str(path.relative_to(source_root))
        for path in source_root.rglob("*.py")
        if "AsyncClient(" in path.read_text()
    )
    assert constructing == ["downstream/registry.py"]


async def cookie_setting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A downstream that sets a cookie and echoes the Cookie header it received."""
    if scope["type"] != "http":
        return
    received = dict(scope["headers"]).get(b"cookie", b"").decode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"set-cookie", b"session=user-a")],
        }
    )
    await send({"type": "http.response.body", "body": received.encode()})


@pytest.mark.anyio
async def test_cookies_from_one_call_never_reach_the_next() -> None:
    """One shared client serves every inbound user: it must not replay a downstream's cookie."""
    with serve(cookie_setting_app) as url:
        async with one_downstream(url) as catalog:
            first = await catalog.get("/items/1")
            second = await catalog.get("/items/2")
    assert first.headers["set-cookie"] == "session=user-a"
    assert second.text == ""
