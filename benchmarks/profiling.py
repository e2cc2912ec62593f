"""Where a server spends its CPU under load: py-spy samples, summarised per library and function.

Run only for a target the benchmark missed. py-spy samples the running server from outside
(``--nonblocking``: the server is never paused) while the load generator drives it, and runs on
the driver's CPU so the sampling does not take the server's own core.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .load import Driver
from .machine import Pinning, pinned
from .plan import Plan
from .processes import Server
from .targets import ITEM_PATH

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]*):(?P<line>\d+)\)$")
# The first path component that names a library (py-spy prints paths from site-packages).
LIBRARIES = (
    "httpx2",
    "httpcore2",
    "httpx",
    "httpcore",
    "h11",
    "h2",
    "anyio",
    "sniffio",
    "starlette",
    "fastapi",
    "pydantic",
    "pydantic_core",
    "uvicorn",
    "structlog",
    "tenacity",
    "json",
    "asyncio",
    "logging",
    "contextlib",
    "ssl",
    "threading",
    "queue",
    "concurrent",
    "uuid",
    "benchmarks",
)
# Work worth naming wherever it sits in a stack: share of samples with the marker in them.
MARKERS = {
    "run_in_threadpool (a sync dependency or endpoint: a thread hop per request)": (
        "run_in_threadpool"
    ),
    "tenacity (retry loop)": "tenacity/",
    "structlog": "structlog/",
    "client.build_request (URL parsing)": "build_request",
}


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def library_of(file: str, package: str) -> str:
    head = file.split("/", 1)[0].removesuffix(".py")
    if head == package:
        return f"{package}.downstream" if file.startswith(f"{package}/downstream/") else package
    return head if head in LIBRARIES else "other"


def summarize_stacks(raw: str, package: str, top: int = 12) -> dict[str, Any]:
    """Self time by library and by function, inclusive time of the service's own functions."""
    by_library: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    markers: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        for label, needle in MARKERS.items():
            if needle in stack:
                markers[label] += count
        frames = [m for m in (FRAME.match(f) for f in stack.split(";")) if m is not None]
        if not frames:
            continue
        leaf = frames[-1]
        by_library[library_of(leaf["file"], package)] += count
        by_function[f"{leaf['function']} ({leaf['file']}:{leaf['line']})"] += count
        own = {f"{m['function']} ({m['file']})" for m in frames if m["file"].startswith(package)}
        for name in own:
            inclusive[name] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(n / total * 100, 1)] for name, n in counter.most_common(top)]

    return {
        "samples": total,
        "self_by_library_percent": share(by_library),
        "self_by_function_percent": share(by_function),
        "service_inclusive_percent": share(inclusive),
        "markers_percent": [
            [label, round(markers[label] / total * 100, 1) if total else 0.0] for label in MARKERS
        ],
    }


def profile_under_load(
    server: Server,
    package: str,
    concurrency: int,
    driver: Driver,
    pinning: Pinning,
    plan: Plan,
    out_dir: Path,
) -> dict[str, Any]:
    spy = py_spy()
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    raw_path = out_dir / f"py-spy-{server.name}-c{concurrency}.txt"
    command = [
        spy,
        "record",
        "--pid",
        str(server.pid),
        "--duration",
        str(max(1, round(plan.profile_seconds))),
        "--rate",
        "250",
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(raw_path),
    ]
    sampler = subprocess.Popen(
        pinned(command, pinning.driver), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        load = driver.run(
            server.base_url + ITEM_PATH,
            concurrency,
            seconds=plan.profile_seconds + 1.5,
            warmup=0.5,
        )
        output, _ = sampler.communicate(timeout=plan.profile_seconds + 30)
    finally:
        if sampler.poll() is None:
            sampler.kill()
            sampler.wait()
    if sampler.returncode != 0 or not raw_path.is_file():
        return {"skipped": f"py-spy failed: {output.decode(errors='replace')[-500:]}"}
    summary = summarize_stacks(raw_path.read_text(), package)
    return {
        "target": server.name,
        "concurrency": concurrency,
        "seconds": plan.profile_seconds,
        "ok_rps_while_sampled": load["ok_rps"],
        **summary,
    }
