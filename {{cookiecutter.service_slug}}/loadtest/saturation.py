"""Could the load generators deliver the load? If not, the run is ``invalid``, not pass or fail.

A locust process above ~90 % CPU measures its own queueing as the service's latency and sends
less than the profile asks for; a worker that went missing sent nothing for part of the run.
Either way the SLO verdicts say nothing about the service, so the run is refused with its own
exit status (3), and the table says how many requests a second each worker delivered, which is
what sizes the worker count for a target load. Plain data, no locust import: unit-tested.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final

#: locust's own CPU_WARNING_THRESHOLD: above it, locust warns its numbers are unreliable.
CPU_LIMIT_PERCENT: Final = 90.0
PASS, FAIL, INVALID = "pass", "fail", "invalid"
EXIT_STATUS: Final = {PASS: 0, FAIL: 1, INVALID: 3}


@dataclass(frozen=True)
class WorkerLoad:
    """One load generator over the run: a locust worker, or the single local runner."""

    worker: str
    requests: int
    seconds: float
    #: The highest CPU locust reported for it (every 10 s); None: never sampled.
    peak_cpu: float | None
    missing: bool = False  # went missing or left before the run ended
    #: Mean percent of a CPU it needed over the run: on one plus waiting for one (a starved
    #: worker uses little CPU because it gets little). None: not measured (single runner).
    cpu_demand: float | None = None
    #: CPU time it used while judged: what a request costs it, so what one worker can drive.
    cpu_seconds: float | None = None

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def capacity_per_second(self) -> float | None:
        """Requests a second this generator would drive at the CPU limit, at this run's cost
        a request (from the CPU it used, not the traffic the profile asked of it). None for a
        generator that invalidates the run: its counters cover different stretches of it."""
        if not self.cpu_seconds or self.requests <= 0 or self.problem() is not None:
            return None
        return self.requests / self.cpu_seconds * CPU_LIMIT_PERCENT / 100

    def problem(self) -> str | None:
        """Why this generator invalidates the run, or None."""
        if self.missing:
            return "missing before the end"
        if self.peak_cpu is None:
            return "no CPU sample"
        if self.peak_cpu > CPU_LIMIT_PERCENT:
            return f"CPU {self.peak_cpu:.0f} % > {CPU_LIMIT_PERCENT:.0f} %"
        if self.cpu_demand is not None and self.cpu_demand > CPU_LIMIT_PERCENT:
            return f"CPU demand {self.cpu_demand:.0f} % > {CPU_LIMIT_PERCENT:.0f} % (starved)"
        return None


def problems(loads: Iterable[WorkerLoad], expected: int) -> list[str]:
    """Every reason the run is invalid; empty when the generators delivered."""
    loads = list(loads)
    found = [f"{load.worker}: {why}" for load in loads if (why := load.problem()) is not None]
    if len(loads) < expected:
        found.append(f"{len(loads)} of {expected} expected workers reported")
    return found


def outcome(slos_passed: bool, generator_problems: list[str]) -> str:
    if generator_problems:
        return INVALID
    return PASS if slos_passed else FAIL


def document_fields(
    loads: Iterable[WorkerLoad], expected: int, slos_passed: bool
) -> dict[str, Any]:
    """What verdict.json gains: the outcome, each generator's load, and why it is invalid."""
    loads = list(loads)
    found = problems(loads, expected)
    result = outcome(slos_passed, found)
    return {
        "verdict": result,
        "generators": {
            "expected": expected,
            "cpu_limit_percent": CPU_LIMIT_PERCENT,
            "workers": [
                {
                    **asdict(load),
                    "requests_per_second": round(load.requests_per_second, 1),
                    "capacity_per_second": _rounded(load.capacity_per_second),
                }
                for load in loads
            ],
            "problems": found,
        },
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def format_generators(loads: Iterable[WorkerLoad]) -> str:
    header = (
        "load generator",
        "requests",
        "requests/s",
        "peak CPU",
        "CPU demand",
        f"requests/s at {CPU_LIMIT_PERCENT:.0f} % CPU",
        "result",
    )
    rows = [
        (
            load.worker,
            str(load.requests),
            f"{load.requests_per_second:.1f}",
            "-" if load.peak_cpu is None else f"{load.peak_cpu:.0f} %",
            "-" if load.cpu_demand is None else f"{load.cpu_demand:.0f} %",
            "-" if load.capacity_per_second is None else f"{load.capacity_per_second:.0f}",
            load.problem() or "ok",
        )
        for load in loads
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def read_outcome(path: Path) -> tuple[str | None, list[WorkerLoad], list[str]]:
    """From verdict.json: the outcome (None: no generator check ran), the generators, problems."""
    document = json.loads(path.read_text())
    generators: Mapping[str, Any] = document.get("generators") or {}
    names = {f.name for f in fields(WorkerLoad)}
    loads = [
        WorkerLoad(**{k: v for k, v in worker.items() if k in names})
        for worker in generators.get("workers", [])
    ]
    return document.get("verdict"), loads, list(generators.get("problems", []))
