"""The tracing-cost scenario: ``python -m benchmarks --only tracing`` (about a minute).

CPU per request of the service baked with ``opentelemetry=no``, baked with ``yes`` and no
exporter configured (what ``yes`` costs a service that does not trace), and baked with ``yes``
tracing 100 % of requests into memory (``traced_service``): the same downstream, the same load,
alternated round by round, at C=10 on the fast downstream. Written to ``results/tracing.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bake import bake
from .load import Driver, Scenario, run_scenario
from .machine import Pinning
from .plan import Plan
from .processes import Server, ready
from .targets import Context, Target, spawn_downstream, spawn_target

CONCURRENCY = 10
NO_OTEL = Target("otel_no", "opentelemetry=no", "service", "httpx-no-otel")
OTEL_OFF = Target("otel_off", "opentelemetry=yes, no exporter configured", "service", "httpx")
OTEL_MEMORY = Target(
    "otel_memory",
    "opentelemetry=yes, 100 % sampled into an in-memory exporter",
    "service",
    "httpx",
    entry="benchmarks.traced_service",
)
TARGETS = (NO_OTEL, OTEL_OFF, OTEL_MEMORY)


def run_tracing(
    plan: Plan,
    pinning: Pinning,
    workdir: Path,
    servers: list[Server],
    out: Path,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    progress(f"baking opentelemetry=yes and =no into {workdir}")
    bakes = {
        "httpx": bake(workdir / "bakes", "httpx"),
        "httpx-no-otel": bake(workdir / "bakes", "httpx", opentelemetry="no"),
    }
    context = Context(bakes, pinning, workdir)
    downstream = spawn_downstream(context, "downstream_fast", 0)
    servers.append(downstream)
    url = downstream.base_url
    started = {t.key: spawn_target(t, context, downstream_url=url) for t in TARGETS}
    servers += started.values()
    ready(servers)
    scenario = Scenario("tracing_c10", "C=10, fast downstream", CONCURRENCY, "fast", TARGETS)
    driver = Driver(pinning, plan)
    try:
        result = run_scenario(scenario, started, downstream, driver, plan, progress)
    finally:
        driver.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "tracing.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "tracing.md").write_text(render(result, plan))
    return result


def render(result: dict[str, Any], plan: Plan) -> str:
    rows = [
        "| target | ok/s | p99 ms | CPU us/request | CPU vs opentelemetry=no |",
        "|---|---|---|---|---|",
    ]
    base = result["targets"][NO_OTEL.key]["summary"]["target_cpu_us_per_request"]["median"]
    for target in TARGETS:
        summary = result["targets"][target.key]["summary"]
        cpu = summary["target_cpu_us_per_request"]["median"]
        rows.append(
            f"| {target.label} | {summary['ok_rps']['median']:,.0f} "
            f"| {summary['p99_ms']['median']:.1f} | {cpu:,.0f} | {cpu / base:.3f}x |"
        )
    return (
        f"# Tracing cost ({result['title']}, medians of {plan.repeats} rounds, "
        f"{plan.run_seconds:g} s each)\n\n" + "\n".join(rows) + "\n"
    )
