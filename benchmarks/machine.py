"""Facts about the machine and library versions, and where each process is pinned.

Pinning keeps the server under test alone on its core, so the load generator and the
downstream (which share the other core) cannot steal its CPU, and each target's figure is the
server's own cost. With one core nothing is pinned and the report says so.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = (
    "httpx",
    "httpcore",
    "httpx2",
    "httpcore2",
    "h11",
    "sniffio",
    "anyio",
    "fastapi",
    "starlette",
    "pydantic",
    "uvicorn",
    "uvloop",
    "httptools",
    "structlog",
    "tenacity",
    "aiohttp",
    "cookiecutter",
    "py-spy",
)


@dataclass(frozen=True)
class Pinning:
    """CPU sets for each role; an empty set means 'not pinned'."""

    target: frozenset[int]
    downstream: frozenset[int]
    driver: frozenset[int]
    how: str

    def describe(self) -> str:
        if not self.target:
            return self.how
        return (
            f"server under test on CPU {fmt(self.target)}; load generator on CPU "
            f"{fmt(self.driver)}; downstreams on CPU {fmt(self.downstream)} ({self.how})"
        )


def fmt(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def plan_pinning() -> Pinning:
    """Server alone on the last CPU; driver on the first; downstreams on a third if there is one."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return Pinning(frozenset(), frozenset(), frozenset(), "one CPU available: nothing pinned")
    how = (
        "servers pinned with os.sched_setaffinity on every thread once ready; short-lived "
        "processes started under " + ("taskset" if shutil.which("taskset") else "a Python shim")
    )
    target = frozenset({cpus[-1]})
    driver = frozenset({cpus[0]})
    downstream = frozenset({cpus[-2]}) if len(cpus) >= 3 else driver
    return Pinning(target, downstream, driver, how)


def pinned(command: list[str], cpus: frozenset[int]) -> list[str]:
    """Prefix ``command`` with taskset so the process and every thread it starts stay on cpus.

    Without taskset, a one-line Python shim does what taskset does: set the mask, then exec.
    """
    if not cpus:
        return command
    if shutil.which("taskset"):
        return ["taskset", "--cpu-list", fmt(cpus), *command]
    shim = "import os, sys; os.sched_setaffinity(0, {%s}); os.execvp(sys.argv[1], sys.argv[1:])"
    return [sys.executable, "-c", shim % fmt(cpus), *command]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return float("nan")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def machine_facts(pinning: Pinning) -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus_online": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gib": memory_total_gib(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python_executable": sys.executable,
        "pinning": {
            **{k: sorted(v) for k, v in asdict(pinning).items() if k != "how"},
            "how": pinning.how,
            "described": pinning.describe(),
        },
    }
