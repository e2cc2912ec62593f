"""Graceful shutdown of the real process: SIGTERM while slow downstream calls are in flight.

What Kubernetes relies on (docs/deployment.md): readiness drops at once, no request already
accepted is cut off inside the grace period, the downstream clients drain and close, the process
exits 0, and nothing on the way is logged as an error.
"""

from __future__ import annotations

import http.client
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.downstream.httplib import httpx

from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import downstreams_at
from tests.integration.service_process import errors_logged, service_process, wait_for

IN_FLIGHT = 4
# Slow enough to be surely in flight at SIGTERM; well inside the read timeout (3 s) and the grace.
LATENCY_MS = 1500
GRACE_SECONDS = 10
MAX_POLLS = 2000


def readiness_until_closed(port: int) -> list[int]:
    """``/readyz`` statuses, polled on fresh connections until the listener stops accepting."""
    statuses: list[int] = []
    for _ in range(MAX_POLLS):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/readyz")
            statuses.append(connection.getresponse().status)
        except OSError:  # refused or reset: uvicorn closed the listener to drain
            break
        finally:
            connection.close()
    return statuses


def pipeline(port: int, *paths: str) -> socket.socket:
    """Send HTTP/1.1 requests back to back on one connection; each waits for the one before."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=GRACE_SECONDS * 2)
    connection.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: test\r\n\r\n".encode() for p in paths))
    return connection


def statuses_until_closed(connection: socket.socket) -> list[int]:
    """The status of every response on ``connection``, read until the server closes it."""
    received = b""
    with connection:
        while chunk := connection.recv(65536):
            received += chunk
    statuses = []
    while received:
        head, _, rest = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in header_lines)
        statuses.append(int(status_line.split()[1]))
        received = rest[int(headers.get("content-length", "0")) :]
    return statuses


@pytest.mark.slow
def test_sigterm_finishes_in_flight_requests_then_exits_0(
    fault: RunningFaultServer, tmp_path: Path
) -> None:
    fault.set_fault("items", "slow", latency_ms=LATENCY_MS)
    settings = {
        **downstreams_at(fault.base_url),
        "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    with service_process(settings, tmp_path) as service, ThreadPoolExecutor(IN_FLIGHT) as pool:
        service.wait_until_ready()
        calls = [
            pool.submit(httpx.get, f"{service.base_url}/items/{n}", timeout=GRACE_SECONDS * 2)
            for n in range(IN_FLIGHT)
        ]
        # This /readyz queues behind a slow call on its connection, so the service answers it
        # during the drain, after SIGTERM, whenever the signal lands relative to uvicorn's loop.
        queued_readiness = pipeline(service.port, "/items/pipelined", "/readyz")
        wait_for(lambda: fault.stats()["in_flight"] == IN_FLIGHT + 1)

        service.terminate()
        # On fresh connections /readyz answers for at most one uvicorn tick, then the listener
        # closes; whatever answers in that window must already be 503.
        polled_readiness = readiness_until_closed(service.port)
        responses = [call.result() for call in calls]
        pipelined = statuses_until_closed(queued_readiness)
        exit_code = service.wait()

    assert exit_code == 0, service.stderr()
    assert [r.status_code for r in responses] == [200] * IN_FLIGHT
    assert [r.json()["id"] for r in responses] == [str(n) for n in range(IN_FLIGHT)]
    assert pipelined == [200, 503]
    assert 200 not in polled_readiness
    assert len(polled_readiness) < MAX_POLLS, "the listener kept accepting after SIGTERM"
    assert errors_logged(service) == []
    assert "Traceback" not in service.stderr()
    events = [e["event"] for e in service.log_events()]
    assert "service.stopping" in events
    assert "downstream.close.undrained" not in events
