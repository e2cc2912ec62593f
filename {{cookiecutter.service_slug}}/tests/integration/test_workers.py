"""A real two-worker run: ``WORKERS=2`` starts two processes that both serve; SIGTERM drains all.

Which worker answered a request is read from the kernel, not from the service: the worker whose
file descriptors hold the server side of the request's TCP connection (Linux /proc).
"""

from __future__ import annotations

import http.client
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.downstream.httplib import httpx

from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import downstreams_at
from tests.integration.service_process import (
    ServiceProcess,
    child_pids,
    errors_logged,
    service_process,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads process sockets from /proc"
)

WORKERS = 2
MAX_REQUESTS = 400
SPREAD_TIMEOUT_S = 15.0
# In flight across SIGTERM: longer than the supervisor takes to pass the signal on (0.5 s),
# shorter than the read timeout (3 s) and the grace period (10 s).
LATENCY_MS = 1000


def worker_pids(service: ServiceProcess) -> list[int]:
    """uvicorn's worker processes (spawned, so their command line names ``spawn_main``)."""
    return [
        pid
        for pid in child_pids(service.process.pid)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def metrics_dir_of(pid: int) -> Path:
    """The ``PROMETHEUS_MULTIPROC_DIR`` a worker was started with (the supervisor made it)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert found, "the worker has no PROMETHEUS_MULTIPROC_DIR"
    return Path(found[0].split(b"=", 1)[1].decode())


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(int(target.removeprefix("socket:[").removesuffix("]")))
    return inodes


def server_side_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the accepted socket for the connection from ``client_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if (local_port, remote_port) == (server_port, client_port):
                return int(fields[9])
    return None


def served_by(port: int, path: str, workers: list[int]) -> tuple[int, int | None]:
    """GET ``path`` on a fresh connection; (status, pid of the worker that answered)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.connect()
        assert connection.sock is not None
        client_port = connection.sock.getsockname()[1]
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        inode = server_side_inode(port, client_port)  # the connection is still open (keep-alive)
        pid = next((p for p in workers if inode is not None and inode in socket_inodes(p)), None)
        return response.status, pid
    finally:
        connection.close()


@pytest.mark.slow
def test_two_workers_both_serve_and_stop_on_sigterm(
    fault: RunningFaultServer, tmp_path: Path
) -> None:
    settings = {
        "WORKERS": str(WORKERS),
        **downstreams_at(fault.base_url),
    }
    with service_process(settings, tmp_path) as service:
        service.wait_until_ready()
        workers = worker_pids(service)
        assert len(workers) == WORKERS, workers
        metrics_dir = metrics_dir_of(workers[0])
        assert metrics_dir.is_dir()

        # The kernel hands each new connection to whichever worker accepts first: keep asking
        # until both have answered (bounded in requests and in time).
        answered_by: dict[int, int] = {}
        statuses = set()
        give_up = time.monotonic() + SPREAD_TIMEOUT_S
        for n in range(MAX_REQUESTS):
            status, pid = served_by(service.port, f"/items/{n}", workers)
            statuses.add(status)
            if pid is not None:
                answered_by[pid] = answered_by.get(pid, 0) + 1
            if len(answered_by) == WORKERS or time.monotonic() > give_up:
                break
        print(f"requests answered per worker pid: {answered_by}")

        fault.set_fault("items", "slow", latency_ms=LATENCY_MS)
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.get, f"{service.base_url}/items/last", timeout=30)
            wait_for(lambda: fault.stats()["in_flight"] == 1)
            service.terminate()
            last = in_flight.result()
        exit_code = service.wait()
        survivors = [pid for pid in workers if Path(f"/proc/{pid}").exists()]

    assert statuses == {200}
    assert sorted(answered_by) == sorted(workers)
    assert last.status_code == 200
    assert exit_code == 0, service.stderr()
    assert survivors == []
    assert not metrics_dir.exists()  # made at start-up, removed at exit: none left in /tmp
    assert errors_logged(service) == []
    assert "Traceback" not in service.stderr()
    ready_events = [e for e in service.log_events() if e["event"] == "service.ready"]
    assert len(ready_events) == WORKERS  # each worker opened its own downstream clients
