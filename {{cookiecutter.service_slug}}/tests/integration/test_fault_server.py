"""The fault server itself: real hypercorn on 127.0.0.1, real sockets, every fault.

Each test starts its own server on ephemeral ports (about 20 ms; TLS adds a
fresh CA), so no test sees another's faults or counters. Every client has a
timeout, and a faulthandler watchdog kills the run if a test still hangs.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest

from {{ cookiecutter.package_name }}.downstream.httplib import httpx

import loadtest
from loadtest.fault_server.__main__ import main as fault_server_main
from loadtest.fault_server.harness import FaultServerError, RunningFaultServer, serve_in_thread
from tests.integration.conftest import wait_until

TEST_TIMEOUT_S = 20.0
CLIENT_TIMEOUT = httpx.Timeout(5.0)


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    """Hard bound per test: dump every thread's stack and exit if it overruns."""
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def server() -> Iterator[RunningFaultServer]:
    with serve_in_thread() as running:
        yield running


@pytest.fixture
def tls_server() -> Iterator[RunningFaultServer]:
    with serve_in_thread(tls=True) as running:
        yield running


def client(server: RunningFaultServer, *, http2: bool = False) -> httpx.Client:
    verify: ssl.SSLContext | bool = True
    if server.ca_path is not None:
        verify = ssl.create_default_context(cafile=str(server.ca_path))
    return httpx.Client(
        base_url=server.base_url,
        http2=http2,
        verify=verify,
        timeout=CLIENT_TIMEOUT,
        trust_env=False,  # never send loopback traffic to an environment proxy
    )


def test_every_path_answers_json_over_http1(server: RunningFaultServer) -> None:
    headers = {"x-request-deadline-ms": "1500", "idempotency-key": "key-1"}
    with client(server) as http:
        item = http.get("/items/42", headers=headers)
        stock = http.get("/inventory/stock/sku-7")
        put = http.put("/items/42", json={"name": "x"}, headers=headers)

    assert item.http_version == "HTTP/1.1"
    assert item.status_code == 200
    assert item.json() == {
        "id": "42",
        "name": "item 42",
        "price": 9.99,
        "currency": "EUR",
        "quantity": 7,
        "path": "/items/42",
        "deadline_ms": "1500",
        "idempotency_key": "key-1",
    }
    assert stock.status_code == 200
    assert stock.json()["id"] == "sku-7"
    assert put.status_code == 200
    assert put.json() == {
        "method": "PUT",
        "path": "/items/42",
        "deadline_ms": "1500",
        "idempotency_key": "key-1",
    }
    assert server.stats()["inventory"] == 1


def test_a_fault_targets_one_path_segment(server: RunningFaultServer) -> None:
    """What the load test uses: each downstream's base path is its name, so a fault on
    "inventory" hits every call of that downstream and nothing else."""
    server.set_fault("inventory", "error", error_rate=1.0, status=502)
    with client(server) as http:
        assert http.get("/inventory/stock/1").status_code == 502
        assert http.get("/catalog/items/1").status_code == 200
        assert http.get("/inventoryx/1").status_code == 200  # a segment, not a prefix
    server.set_fault("*", "error", error_rate=1.0, status=503)  # replaces every fault
    with client(server) as http:
        assert http.get("/inventory/stock/1").status_code == 503


def test_keep_alive_responses_are_not_held_back_by_nagle(server: RunningFaultServer) -> None:
    # hypercorn writes headers and body separately; without TCP_NODELAY every
    # response would wait ~40 ms for a delayed ACK (20 requests: 0.8 s or more).
    with client(server) as http:
        http.get("/items/0")
        started = time.monotonic()
        for n in range(20):
            http.get(f"/items/{n}")
        elapsed_s = time.monotonic() - started

    assert elapsed_s < 0.4


def test_tls_negotiates_http2(tls_server: RunningFaultServer) -> None:
    assert tls_server.base_url.startswith("https://")
    with client(tls_server, http2=True) as http:
        response = http.get("/prices/7")

    assert response.http_version == "HTTP/2"
    assert response.json()["id"] == "7"


def test_slow_delays_only_its_route(server: RunningFaultServer) -> None:
    server.set_fault("items", "slow", latency_ms=300)
    with client(server) as http:
        started = time.monotonic()
        slow = http.get("/items/1")
        slow_s = time.monotonic() - started
        started = time.monotonic()
        http.get("/prices/1")
        fast_s = time.monotonic() - started

    assert slow.status_code == 200
    assert slow_s >= 0.3
    assert fast_s < 0.3


def timed_gets(server: RunningFaultServer, concurrency: int) -> list[float]:
    """Seconds each of ``concurrency`` GETs of one target took, sent at once from one loop (each
    on its own connection), so they are all in flight together."""

    async def all_at_once() -> list[float]:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=CLIENT_TIMEOUT, limits=limits
        ) as http:

            async def one(n: int) -> float:
                started = time.monotonic()
                assert (await http.get(f"/items/{n}")).status_code == 200
                return time.monotonic() - started

            return list(await asyncio.gather(*(one(n) for n in range(concurrency))))

    return asyncio.run(all_at_once())


def test_degrade_slows_every_request_once_its_target_is_past_capacity(
    server: RunningFaultServer,
) -> None:
    server.set_fault("items", "degrade", capacity=2, latency_ms=50)
    past = timed_gets(server, 8)  # the 8th in flight: 50 ms * (8 / 2)**2 = 800 ms
    server.set_fault("items", "degrade", capacity=64, latency_ms=50)  # capacity back mid-run
    within = timed_gets(server, 8)  # 50 ms each
    assert max(past) >= 0.6
    assert max(within) < 0.6  # over ten times the latency: room for any machine


def test_tail_slows_only_its_share_of_requests(server: RunningFaultServer) -> None:
    server.set_fault("items", "tail", tail_rate=0.25, tail_latency_ms=400)
    durations = timed_gets(server, 40)
    slow = sum(d >= 0.4 for d in durations)
    assert 1 <= slow <= 25, durations  # 10 expected; far from every one and from none


def test_hang_never_answers_and_ends_when_the_client_leaves(server: RunningFaultServer) -> None:
    server.set_fault("items", "hang")
    with client(server) as http, pytest.raises(httpx.ReadTimeout):
        http.get("/items/1", timeout=0.3)

    with client(server) as http:
        assert http.get("/prices/1").status_code == 200
    # The timed-out client closed its connection: the hung handler is gone too.
    wait_until(lambda: server.stats()["in_flight"] == 0)


@pytest.mark.parametrize(("params", "status"), [({}, 503), ({"status": 500}, 500)])
def test_error_rate_one_always_errors(
    server: RunningFaultServer, params: dict[str, int], status: int
) -> None:
    server.set_fault("prices", "error", error_rate=1.0, **params)
    with client(server) as http:
        responses = [http.get("/prices/1") for _ in range(5)]
        healthy_route = http.get("/items/1")

    assert [r.status_code for r in responses] == [status] * 5
    assert healthy_route.status_code == 200


def test_error_rate_zero_never_errors(server: RunningFaultServer) -> None:
    server.set_fault("*", "error", error_rate=0.0)
    with client(server) as http:
        assert {http.get("/items/1").status_code for _ in range(5)} == {200}


def test_throttle_answers_429_with_retry_after(server: RunningFaultServer) -> None:
    server.set_fault("*", "throttle", retry_after=2)
    with client(server) as http:
        response = http.get("/items/1")

    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_reset_drops_the_connection_mid_body(tls_server: RunningFaultServer, http2: bool) -> None:
    tls_server.set_fault("items", "reset")
    with client(tls_server, http2=http2) as http:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            http.get("/items/1")
        # The next request gets a new connection and a healthy route.
        assert http.get("/prices/1").status_code == 200


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_truncated_sends_half_the_promised_body(
    tls_server: RunningFaultServer, http2: bool
) -> None:
    tls_server.set_fault("items", "truncated")
    with client(tls_server, http2=http2) as http:
        # h11: "peer closed connection without sending complete message body"; h2 (which
        # httpcore does not map while it reads a body): InvalidBodyLengthError.
        with pytest.raises((httpx.HTTPError, h2.exceptions.ProtocolError), match="received 64"):
            http.get("/items/1")
        assert http.get("/prices/1").status_code == 200


def test_reset_stream_resets_one_http2_stream_and_keeps_the_connection(
    tls_server: RunningFaultServer,
) -> None:
    tls_server.set_fault("items", "reset_stream")
    with client(tls_server, http2=True) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="StreamReset"):
            http.get("/items/1")
        assert http.get("/prices/1").status_code == 200
    assert tls_server.stats()["connections"] == 1


def test_reset_stream_over_http1_drops_the_connection(server: RunningFaultServer) -> None:
    server.set_fault("items", "reset_stream")
    with client(server) as http:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            http.get("/items/1")
        assert http.get("/prices/1").status_code == 200
    assert server.stats()["connections"] == 2


def test_bad_head_over_http1_is_not_a_status_line(server: RunningFaultServer) -> None:
    server.set_fault("items", "bad_head")
    with client(server) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="illegal status line"):
            http.get("/items/1")
        assert http.get("/prices/1").status_code == 200


def test_bad_head_over_http2_has_a_status_that_is_not_a_number(
    tls_server: RunningFaultServer,
) -> None:
    """httpcore 1.0.9 parses ``:status`` with a bare int(): the service's layer maps this."""
    tls_server.set_fault("items", "bad_head")
    with client(tls_server, http2=True) as http:
        with pytest.raises((httpx.HTTPError, ValueError), match="2OO"):
            http.get("/items/1")
        assert http.get("/prices/1").status_code == 200


def test_idle_close_closes_connections_left_idle(server: RunningFaultServer) -> None:
    server.set_fault("*", "idle_close", idle_ms=50)
    with client(server) as http:
        assert http.get("/items/1").status_code == 200
        wait_until(lambda: server.stats()["open_connections"] == 0)
        assert http.get("/items/2").status_code == 200  # h11 sees the close, reconnects
    assert server.stats()["connections"] == 2
    server.clear_faults()
    with client(server) as http:
        http.get("/items/3")
        time.sleep(0.2)
        assert server.stats()["open_connections"] == 1


def test_drip_delivers_the_whole_body_in_spaced_chunks(server: RunningFaultServer) -> None:
    server.set_fault("items", "drip", drip_chunks=4, drip_interval_ms=100)
    with client(server) as http:
        started = time.monotonic()
        with http.stream("GET", "/items/9") as response:
            chunks = list(response.iter_raw())
        elapsed_s = time.monotonic() - started

    assert response.status_code == 200
    assert json.loads(b"".join(chunks))["id"] == "9"
    assert len(chunks) > 1
    assert elapsed_s >= 0.3  # three gaps of 100 ms


def test_refuse_closes_the_port_and_drops_connections(server: RunningFaultServer) -> None:
    server.set_fault("items", "hang")
    with client(server) as hung, ThreadPoolExecutor(max_workers=1) as pool:
        in_flight = pool.submit(hung.get, "/items/1")
        wait_until(lambda: server.stats()["in_flight"] == 1)

        server.set_fault("*", "refuse")

        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            in_flight.result(timeout=5)
    with client(server) as http, pytest.raises(httpx.ConnectError):
        http.get("/prices/1")
    # The admin API has its own port and keeps working.
    wait_until(lambda: server.stats()["open_connections"] == 0)
    assert server.stats()["prices"] == 0  # a refused connection never delivers a request

    server.set_fault("*", "healthy")
    with client(server) as http:
        assert http.get("/prices/1").status_code == 200


def test_goaway_at_run_time_replaces_the_http2_connection(tls_server: RunningFaultServer) -> None:
    tls_server.set_fault("*", "goaway", after_requests=2)
    with client(tls_server, http2=True) as http:
        answered = [http.get(f"/items/{n}") for n in range(2)]
        assert tls_server.stats()["connections"] == 1
        # hypercorn sends GOAWAY when request 3 arrives and never answers it.
        with pytest.raises(httpx.RemoteProtocolError, match="ConnectionTerminated"):
            http.get("/items/2")
        after = http.get("/items/3")

    assert [r.status_code for r in answered] == [200, 200]
    assert after.status_code == 200
    assert after.http_version == "HTTP/2"
    assert tls_server.stats()["connections"] == 2


def read_remote_max_streams(tls: ssl.SSLSocket, connection: h2.connection.H2Connection) -> int:
    """Read frames until the server changes MAX_CONCURRENT_STREAMS; return the new value."""
    max_streams = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
    while True:
        for event in connection.receive_data(tls.recv(65_535)):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                changed = event.changed_settings.get(max_streams)
                if changed is not None:
                    tls.sendall(connection.data_to_send())  # the SETTINGS ack
                    return int(changed.new_value)


def test_streams_lowers_the_stream_limit_of_live_http2_connections(
    tls_server: RunningFaultServer,
) -> None:
    """A raw h2 client, so the SETTINGS frames themselves are seen: the limit drops on the open
    connection, and clearing the fault raises it again."""
    assert tls_server.ca_path is not None
    context = ssl.create_default_context(cafile=str(tls_server.ca_path))
    context.set_alpn_protocols(["h2"])
    host, port = tls_server.base_url.removeprefix("https://").rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        connection = h2.connection.H2Connection()
        connection.initiate_connection()
        tls.sendall(connection.data_to_send())
        assert read_remote_max_streams(tls, connection) == 100  # hypercorn's opening SETTINGS
        tls_server.set_fault("*", "streams", max_streams=1)
        assert read_remote_max_streams(tls, connection) == 1
        tls_server.clear_faults()
        assert read_remote_max_streams(tls, connection) == 100


def test_goaway_at_start_up_survives_clearing_faults() -> None:
    with serve_in_thread(tls=True, goaway_after=1) as running:
        running.set_fault("items", "slow", latency_ms=1)
        running.clear_faults()
        with client(running, http2=True) as http:
            assert http.get("/items/1").status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):
                http.get("/items/2")
            assert http.get("/items/3").status_code == 200


def test_goaway_over_http1_recycles_gracefully(server: RunningFaultServer) -> None:
    server.set_fault("*", "goaway", after_requests=2)
    with client(server) as http:
        responses = [http.get(f"/items/{n}") for n in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[1].headers["connection"] == "close"
    assert server.stats()["connections"] == 2


def test_stats_count_requests_received(server: RunningFaultServer) -> None:
    server.set_fault("prices", "error", error_rate=1.0)
    with client(server) as http:
        for _ in range(3):
            http.get("/items/1")
        for _ in range(2):
            http.post("/prices/1")
        http.get("/unknown")

    wait_until(lambda: server.stats()["open_connections"] == 0)  # the close is asynchronous
    assert server.stats() == {
        "items": 3,
        "prices": 2,  # errors are received requests too
        "unknown": 1,
        "total": 6,
        "connections": 1,
        "in_flight": 0,
        "open_connections": 0,
    }
    server.reset_stats()
    assert server.stats()["total"] == 0


@pytest.mark.parametrize(
    ("route", "mode", "params"),
    [
        ("items", "sideways", {}),
        ("items", "slow", {}),  # latency_ms is required
        ("items", "slow", {"latency": 5}),  # a typo is an error, not a no-op
        ("items", "error", {"error_rate": 1.5}),
        ("items", "refuse", {}),  # connection-level: only for "*"
        ("items", "degrade", {"capacity": 0}),
        ("items", "tail", {"tail_rate": 0.1}),  # tail_latency_ms is required
        ("a/b", "healthy", {}),  # a target is one path segment
    ],
)
def test_admin_rejects_bad_faults(
    server: RunningFaultServer, route: str, mode: str, params: dict[str, float]
) -> None:
    with pytest.raises(FaultServerError, match="400"):
        server.set_fault(route, mode, **params)


def test_rejects_non_loopback_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="loopback"), serve_in_thread(host="0.0.0.0"):
        pass
    with pytest.raises(SystemExit) as exit_info:
        fault_server_main(["--host", "192.0.2.1"])

    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err


def test_ipv6_loopback() -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with serve_in_thread(host="::1") as running, client(running) as http:
        assert running.base_url.startswith("http://[::1]:")
        assert http.get("/items/1").status_code == 200


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    project_root = Path(loadtest.__file__).resolve().parent.parent
    ca_path = tmp_path / "ca.pem"
    command = [sys.executable, "-m", "loadtest.fault_server", "--port", "0", "--admin-port", "0"]
    command += ["--tls", "--ca-out", str(ca_path)]
    env = {**os.environ, "PYTHONPATH": str(project_root)}
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            started = process.stderr.readline()  # the one start-up line
            assert "https://127.0.0.1:" in started
            assert ca_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            process.kill()
