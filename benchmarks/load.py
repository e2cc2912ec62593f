"""Drive the targets with the load generator, alternating them run by run (A B C D A B C D ...).

Each run is one ``benchmarks.loadgen`` process on the driver's CPU. Alternating means slow drift
on a shared machine (another tenant, thermal limits) lands on every target alike, and the ratio
of two targets is taken within each round before the median is taken across rounds.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .machine import Pinning, pinned
from .plan import Plan
from .processes import Server, clean_environment
from .stats import paired_ratios, spread
from .targets import ITEM_PATH, Target

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    concurrency: int
    downstream: str
    """``fast``, ``slow`` or ``degrade``."""
    targets: tuple[Target, ...]
    warmup_seconds: float | None = None
    """Load before each run (None: the plan's)."""


class Driver:
    """The load generator process (``loadgen --serve``) on the driver's CPU, one job at a time."""

    def __init__(self, pinning: Pinning, plan: Plan) -> None:
        self.plan = plan
        command = [sys.executable, "-m", "benchmarks.loadgen", "--serve"]
        self.process = subprocess.Popen(
            pinned(command, pinning.driver),
            cwd=PROJECT_ROOT,
            env=clean_environment({}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(
        self,
        url: str,
        concurrency: int,
        *,
        seconds: float | None = None,
        requests: int | None = None,
        warmup: float = 0.0,
        watch: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """One job; its JSON summary. Bounded: the window, the stragglers' timeout, slack."""
        job = {
            "url": url,
            "concurrency": concurrency,
            "seconds": seconds,
            "requests": requests,
            "warmup": warmup,
            "timeout": self.plan.request_timeout,
            "watch": watch or {},
        }
        limit = (seconds or 0) + warmup + self.plan.request_timeout + 60 + (requests or 0) / 50
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(job) + "\n")
        stdin.flush()
        readable, _, _ = select.select([stdout], [], [], limit)
        line = stdout.readline() if readable else ""
        if not line:
            self.close()
            raise RuntimeError(f"the load generator gave no answer for {url} within {limit:.0f}s")
        summary: dict[str, Any] = json.loads(line)
        if "error" in summary:
            raise RuntimeError(f"the load generator failed against {url}: {summary['error']}")
        return summary

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # end of jobs: it exits by itself
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def one_run(
    driver: Driver, server: Server, downstream: Server, concurrency: int, plan: Plan, warmup: float
) -> dict[str, Any]:
    raw = driver.run(
        server.base_url + ITEM_PATH,
        concurrency,
        seconds=plan.run_seconds,
        warmup=warmup,
        watch={"target": server.pid, "downstream": downstream.pid},
    )
    cpu = raw["cpu_s"]
    elapsed = raw["elapsed_s"]
    # /proc counts CPU in clock ticks (10 ms): a reading of 0 under load is a failed reading.
    readable = cpu["target"] > 0 and raw["answered"] > 0
    return {
        **raw,
        "target_cpu_us_per_request": (
            cpu["target"] / raw["answered"] * 1e6 if readable else float("nan")
        ),
        "target_cpu_busy": cpu["target"] / elapsed if elapsed else 0.0,
        "driver_cpu_busy": cpu["driver"] / elapsed if elapsed else 0.0,
        "downstream_cpu_busy": cpu["downstream"] / elapsed if elapsed else 0.0,
    }


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians with min-max over the runs of one target in one scenario; counts are summed."""

    def over(pick: Callable[[dict[str, Any]], float]) -> Any:
        return spread([pick(r) for r in runs])

    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for run in runs:
        statuses.update(run["statuses"])
        reasons.update(run["reasons"])
        errors.update(run["client_errors"])
    return {
        "ok_rps": over(lambda r: r["ok_rps"]),
        "p50_ms": over(lambda r: r["latency_ms"].get("p50", float("nan"))),
        "p99_ms": over(lambda r: r["latency_ms"].get("p99", float("nan"))),
        "max_ms": over(lambda r: r["latency_ms"].get("max", float("nan"))),
        "ok_p99_ms": over(lambda r: r["ok_latency_ms"].get("p99", float("nan"))),
        "target_cpu_us_per_request": over(lambda r: r["target_cpu_us_per_request"]),
        "target_cpu_busy": over(lambda r: r["target_cpu_busy"]),
        "rig_cpu_busy": over(lambda r: r["driver_cpu_busy"] + r["downstream_cpu_busy"]),
        "answered": sum(r["answered"] for r in runs),
        "statuses": dict(sorted(statuses.items())),
        "reasons": dict(sorted(reasons.items())),
        "client_errors": dict(sorted(errors.items())),
    }


def run_scenario(
    scenario: Scenario,
    servers: dict[str, Server],
    downstream: Server,
    driver: Driver,
    plan: Plan,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {t.key: [] for t in scenario.targets}
    warmup = plan.warmup_seconds if scenario.warmup_seconds is None else scenario.warmup_seconds
    for round_number in range(plan.repeats):
        for target in scenario.targets:
            server = servers[target.key]
            run = one_run(driver, server, downstream, scenario.concurrency, plan, warmup)
            runs[target.key].append(run)
            progress(
                f"  {scenario.key} round {round_number + 1}/{plan.repeats} {target.key:15s} "
                f"{run['ok_rps']:8.0f} ok/s  p99 {run['latency_ms'].get('p99', 0):8.1f} ms  "
                f"cpu {run['target_cpu_us_per_request']:6.0f} us/req"
            )
    return {
        "key": scenario.key,
        "title": scenario.title,
        "concurrency": scenario.concurrency,
        "downstream": scenario.downstream,
        "targets": {
            t.key: {"label": t.label, "summary": summarize(runs[t.key]), "runs": runs[t.key]}
            for t in scenario.targets
        },
        "ratios": ratios(runs),
    }


RATIOS = (
    ("service_httpx", "bare_shared"),
    ("service_httpx", "per_request"),
    ("service_httpx2", "bare_shared"),
    ("service_httpx2", "service_httpx"),
    ("service_httpx", "reference"),
    ("service_httpx2", "reference"),
    ("service_httpx", "service_httpcore"),
)
#: The degrading-downstream scenario: the adaptive bulkhead against each fixed width.
ADAPTIVE_PREFIX = "service_fixed_"


def ratios(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Throughput ratios paired by round, and the inverse ratio of CPU per request.

    CPU per request is what a target costs whoever else shares the machine, so on a noisy host
    its ratio is the steadier estimate of how much more one core serves.
    """
    found: dict[str, Any] = {}
    fixed = [key for key in runs if key.startswith(ADAPTIVE_PREFIX)]
    pairs = [*RATIOS, *(("service_adaptive", key) for key in fixed if "service_adaptive" in runs)]
    for a, b in pairs:
        if a in runs and b in runs:
            found[f"{a}/{b}"] = {
                "throughput": paired_ratios(
                    [r["ok_rps"] for r in runs[a]], [r["ok_rps"] for r in runs[b]]
                ),
                "cpu_efficiency": paired_ratios(
                    [r["target_cpu_us_per_request"] for r in runs[b]],
                    [r["target_cpu_us_per_request"] for r in runs[a]],
                ),
            }
    return found


def debug_outcomes(server: Server) -> dict[str, Any] | None:
    """The generated service's own counters (GET /debug/downstreams), to corroborate the driver."""
    try:
        url = server.base_url + "/debug/downstreams"
        with urllib.request.urlopen(url, timeout=5) as response:
            views: dict[str, Any] = json.loads(response.read())
    except (OSError, ValueError):
        return None
    catalog = views.get("catalog", {})
    config = catalog.get("config", {})
    return {
        "outcomes": catalog.get("outcomes"),
        "bulkhead": catalog.get("bulkhead"),
        "config": {k: config.get(k) for k in ("deadline_seconds", "limits", "bulkhead")},
    }
