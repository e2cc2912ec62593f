"""Read the service and drive the fault server over plain HTTP, with short timeouts.

stdlib ``urllib`` on purpose: it works the same in the runner's threads and in locust's
gevent-patched master, and it shares nothing with the service's own HTTP client. Every read
returns None when the other side does not answer or has no such endpoint (a naive service has
no ``/debug/downstreams``): the gate then fails the SLOs that needed it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import psutil  # type: ignore[import-untyped]  # a locust dependency; no type stubs

from loadtest.gate import Snapshot
from loadtest.profiles import FaultSpec

TIMEOUT_S: Final = 3.0
#: The service's output, in each run's report folder (the runner writes it).
SERVICE_LOG: Final = "service.log"
# Never route these calls through an HTTP(S)_PROXY from the environment.
_OPENER: Final = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: The parts of each downstream's debug view the gate, the sampler and the report use.
_VIEW_KEYS: Final = (
    "pool",
    "in_flight",
    "queued",
    "outcomes",
    "leaked_responses",
    "open_streams",
    "orphans_repaired",
    "bulkhead",  # its width: the adaptive limit's
)


def fetch(
    url: str, *, method: str = "GET", body: object = None, timeout: float = TIMEOUT_S
) -> bytes:
    """The response body; raises OSError (``urllib.error.URLError`` is one) on any failure."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - http:// URLs on loopback, built here
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    with _OPENER.open(request, timeout=timeout) as response:
        content: bytes = response.read()
        return content


def fetch_json(url: str, timeout: float = TIMEOUT_S) -> Any:
    """Parsed JSON, or None when the URL does not answer 2xx JSON in time."""
    try:
        return json.loads(fetch(url, timeout=timeout))
    except (OSError, ValueError):
        return None


# -- the fault server ---------------------------------------------------------------------------


def apply_faults(admin_url: str, faults: Iterable[FaultSpec]) -> None:
    """Everything healthy first (that also lifts refuse), then each fault of the phase."""
    fetch(f"{admin_url}/__admin/faults", method="DELETE")
    for fault in faults:
        fetch(f"{admin_url}/__admin/faults/{fault.route}", method="PUT", body=fault.body())


def fault_stats(admin_url: str) -> dict[str, int] | None:
    stats = fetch_json(f"{admin_url}/__admin/stats")
    return {str(k): int(v) for k, v in stats.items()} if isinstance(stats, dict) else None


def wait_for_fault_server(admin_url: str, timeout_s: float) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if fault_stats(admin_url) is not None:
            return True
        time.sleep(0.1)
    return False


# -- the service --------------------------------------------------------------------------------


def downstream_views(service_url: str) -> dict[str, dict[str, Any]] | None:
    """``/debug/downstreams``, cut to what the suite reads (no config, no oldest calls)."""
    views = fetch_json(f"{service_url}/debug/downstreams")
    if not isinstance(views, dict):
        return None
    summary: dict[str, dict[str, Any]] = {}
    for name, view in views.items():
        if not isinstance(view, dict):
            return None
        summary[name] = {key: view.get(key) for key in _VIEW_KEYS}
        breaker = view.get("breaker")
        summary[name]["breaker"] = breaker.get("state") if isinstance(breaker, dict) else None
    return summary


def metrics(service_url: str) -> dict[str, float] | None:
    """Prometheus text as ``{'name{labels}': value}``; None without ``/metrics``."""
    try:
        text = fetch(f"{service_url}/metrics").decode()
    except (OSError, UnicodeDecodeError):
        return None
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            samples[key] = float(value)
        except ValueError:
            continue
    return samples


def process_usage(pid: int | None, service_url: str) -> dict[str, float] | None:
    """RSS (MiB), open fds and CPU seconds of the service: from its pid, else from /metrics."""
    if pid is not None:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                cpu = process.cpu_times()
                return {
                    "rss_mib": process.memory_info().rss / 2**20,
                    "open_fds": process.num_fds(),
                    "cpu_s": cpu.user + cpu.system,
                }
        except (psutil.Error, AttributeError):  # gone, or no num_fds (Windows)
            return None
    samples = metrics(service_url)
    if samples is None:
        return None
    rss = samples.get("process_resident_memory_bytes")
    fds = samples.get("process_open_fds")
    cpu_s = samples.get("process_cpu_seconds_total")
    if rss is None or fds is None or cpu_s is None:
        return None
    return {"rss_mib": rss / 2**20, "open_fds": fds, "cpu_s": cpu_s}


def snapshot(
    service_url: str, admin_url: str | None, pid: int | None, service_log: Path | None = None
) -> Snapshot:
    """The service's debug view, process usage and log length, and the fault server's
    counters, now."""
    views = downstream_views(service_url)
    fault = fault_stats(admin_url) if admin_url else None
    return Snapshot(
        t=time.time(),
        fault=fault,
        downstreams=views,
        usage=process_usage(pid, service_url),
        log_lines=count_lines(service_log) if service_log else None,
    )


def count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as log:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 16), b""))
    except OSError:
        return None


def wait_until_ready(
    service_url: str, timeout_s: float, is_alive: Callable[[], bool] = lambda: True
) -> bool:
    """Poll ``/readyz`` until it answers 200 (True); False after ``timeout_s`` or on death."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up and is_alive():
        try:
            fetch(f"{service_url}/readyz", timeout=1.0)
            return True
        except OSError:
            time.sleep(0.1)
    return False
