"""``python -m benchmarks [--quick] [--out DIR]``: the whole benchmark, end to end.

Bakes the service for each HTTP client, starts the downstreams and the targets pinned to their
CPUs, runs the alternated load scenarios, the slow-downstream scenario, the degrading-downstream
scenario (fixed bulkheads against the adaptive one), the memory run and the in-process
micro-benchmarks, profiles any missed load target with py-spy, then writes
``latest.json`` and ``latest.md`` and prints the tables. Every process it starts is stopped,
also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import report, verdicts
from .bake import bake
from .load import PROJECT_ROOT, Driver, Scenario, debug_outcomes, run_scenario
from .machine import Pinning, machine_facts, pinned, plan_pinning, versions
from .memory import rss_growth
from .plan import FULL, QUICK, Plan
from .processes import Server, ready, running, stop
from .profiling import profile_under_load
from .targets import (
    ALL,
    BARE_SHARED,
    SERVICE_HTTPX,
    SLOW,
    Context,
    Target,
    degrade_targets,
    spawn_downstream,
    spawn_target,
)
from .tracing_cost import render as render_tracing
from .tracing_cost import run_tracing

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
LOAD_GENERATOR = (
    "benchmarks.loadgen: closed-loop aiohttp client on uvloop, its own process (see README)"
)


BEGAN = time.monotonic()
# Load verdicts whose miss gets a py-spy profile of the service (and of the bare app).
PROFILED_VERDICTS = ("service_vs", "cpu_cut", "tail", "stretch_cpu")


def progress(message: str) -> None:
    print(f"[{time.monotonic() - BEGAN:6.1f}s] {message}", file=sys.stderr, flush=True)


def fast_scenarios(plan: Plan) -> list[Scenario]:
    return [
        Scenario(f"fast_c{c}", f"C={c}, fast downstream", c, "fast", ALL)
        for c in plan.concurrencies
    ]


def slow_scenario(plan: Plan) -> Scenario:
    return Scenario(
        f"slow_c{plan.slow_concurrency}",
        f"C={plan.slow_concurrency}, slow downstream ({plan.slow_latency_ms} ms), "
        f"pool of {plan.slow_pool}",
        plan.slow_concurrency,
        "slow",
        SLOW,
    )


def degrade_scenario(plan: Plan) -> Scenario:
    return Scenario(
        f"degrade_c{plan.degrade_concurrency}",
        f"C={plan.degrade_concurrency}, degrading downstream ({plan.degrade_latency_ms} ms, "
        f"slower past {plan.degrade_capacity} in flight), pool of {plan.degrade_pool}",
        plan.degrade_concurrency,
        "degrade",
        degrade_targets(plan.degrade_capacity, plan.degrade_pool),
        warmup_seconds=plan.degrade_warmup_seconds,
    )


def run_load(
    plan: Plan,
    driver: Driver,
    downstreams: dict[str, Server],
    targets: dict[str, dict[str, Server]],
) -> list[dict[str, Any]]:
    """Every scenario in turn; ``targets`` are the started servers by downstream."""
    results = []
    for scenario in [*fast_scenarios(plan), slow_scenario(plan), degrade_scenario(plan)]:
        progress(f"scenario {scenario.title}")
        started = targets[scenario.downstream]
        downstream = downstreams[scenario.downstream]
        result = run_scenario(scenario, started, downstream, driver, plan, progress)
        result["service_counters"] = {
            t.key: debug_outcomes(started[t.key]) for t in scenario.targets if t.kind == "service"
        }
        results.append(result)
    return results


def run_micro(context: Context, plan: Plan) -> dict[str, Any]:
    results = {}
    for client, baked in context.bakes.items():
        progress(f"micro-benchmarks, {client} bake")
        out = context.workdir / f"micro-{client}.json"
        command = [
            sys.executable,
            "-m",
            "benchmarks.micro",
            "--src",
            str(baked.src),
            "--package",
            baked.package,
            "--calls",
            str(plan.micro_calls),
            "--rounds",
            str(plan.micro_rounds),
            "--out",
            str(out),
        ]
        done = subprocess.run(
            pinned(command, context.pinning.target),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"micro-benchmarks failed ({client}):\n{done.stderr[-3000:]}")
        results[client] = json.loads(out.read_text())
    return results


def run_profiles(
    context: Context,
    plan: Plan,
    driver: Driver,
    fast_targets: dict[str, Server],
    missed: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """py-spy the generated service and the shared-client baseline at each missed concurrency."""
    concurrencies = sorted(
        {v["evidence"]["concurrency"] for v in missed if "concurrency" in v["evidence"]}
    )
    if plan.profile_seconds <= 0 or not concurrencies:
        return []
    found = []
    for target in (SERVICE_HTTPX, BARE_SHARED):
        package = context.bakes["httpx"].package if target.kind == "service" else "benchmarks"
        for c in concurrencies:
            progress(f"profiling {target.key} at C={c} with py-spy")
            found.append(
                profile_under_load(
                    fast_targets[target.key],
                    package,
                    c,
                    driver,
                    context.pinning,
                    plan,
                    context.workdir,
                )
            )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where latest.* go")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs)")
    parser.add_argument(
        "--only",
        choices=["tracing"],
        help="run one scenario alone: tracing = CPU a request with opentelemetry=no/yes/traced",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rebuild latest.md from latest.json (after editing analysis.md)",
    )
    args = parser.parse_args()
    if args.render:
        saved = json.loads((args.out / "latest.json").read_text())
        (args.out / "latest.md").write_text(report.render(saved, with_analysis=True))
        print(f"rebuilt {args.out / 'latest.md'}")
        return 0
    plan = QUICK if args.quick else FULL
    command = "python -m benchmarks" + "".join(
        f" {shlex.quote(a)}" for a in sys.argv[1:] if a != str(DEFAULT_OUT)
    )
    began = time.monotonic()
    pinning = plan_pinning()
    result: dict[str, Any] = {
        "command": command,
        "started_at": now(),
        "plan": plan.__dict__,
        "machine": machine_facts(pinning),
        "versions": versions(),
        "load_generator": LOAD_GENERATOR,
    }
    if pinning.driver:
        os.sched_setaffinity(0, pinning.driver)  # the harness itself stays off the server's CPU
    workdir = Path(tempfile.mkdtemp(prefix="pool-bench-"))
    servers: list[Server] = []
    if args.only == "tracing":
        with running(servers):
            tracing = run_tracing(plan, pinning, workdir, servers, args.out, progress)
        remove_tree(workdir)
        print(render_tracing(tracing, plan))
        print(f"wrote {args.out / 'tracing.md'}; {command}")
        return 0
    try:
        with running(servers):
            result.update(measure(plan, pinning, workdir, servers))
    except BaseException:
        progress(f"benchmark failed; logs of the servers are in {workdir}")
        raise
    if plan is FULL:  # the tracing cost is a figure of make bench too (results/tracing.md)
        tracing_dir = workdir / "tracing"
        tracing_dir.mkdir()
        with running([]) as tracing_servers:
            run_tracing(plan, pinning, tracing_dir, tracing_servers, args.out, progress)
    if not args.keep:
        remove_tree(workdir)
    result["finished_at"] = now()
    result["duration_seconds"] = time.monotonic() - began
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    json_path, md_path = report.write(result, args.out)
    print(report.render(result, with_analysis=False))
    print(f"\nwrote {md_path}, {json_path} and {args.out / 'tracing.md'}", end="")
    print(f" in {result['duration_seconds']:.0f} s")
    return 0


def measure(plan: Plan, pinning: Pinning, workdir: Path, servers: list[Server]) -> dict[str, Any]:
    progress(f"baking the service into {workdir}")
    with ThreadPoolExecutor(max_workers=2) as pool:  # each bake is a cookiecutter process
        baked = pool.map(lambda client: bake(workdir / "bakes", client), ("httpx", "httpx2"))
        bakes = {b.http_client: b for b in baked}
    context = Context(bakes, pinning, workdir)
    progress("starting the downstreams and the targets")
    downstreams = {
        "fast": spawn_downstream(context, "downstream_fast", 0),
        "slow": spawn_downstream(context, "downstream_slow", plan.slow_latency_ms),
        "degrade": spawn_downstream(
            context, "downstream_degrade", plan.degrade_latency_ms, plan.degrade_capacity
        ),
    }
    servers += downstreams.values()

    def spawn_all(
        targets: tuple[Target, ...], downstream: str, pool: int | None = None
    ) -> dict[str, Server]:
        """Each target against one downstream; the fast set keeps the targets' own names."""
        url = downstreams[downstream].base_url
        suffix = "" if downstream == "fast" else f"_{downstream}"
        return {
            t.key: spawn_target(t, context, downstream_url=url, pool=pool, suffix=suffix)
            for t in targets
        }

    started = {
        "fast": spawn_all(ALL, "fast"),
        "slow": spawn_all(SLOW, "slow", plan.slow_pool),
        "degrade": spawn_all(degrade_scenario(plan).targets, "degrade", plan.degrade_pool),
    }
    for by_key in started.values():
        servers += by_key.values()
    fresh = spawn_target(
        SERVICE_HTTPX, context, downstream_url=downstreams["fast"].base_url, suffix="_memory"
    )
    servers.append(fresh)
    ready(servers)
    driver = Driver(pinning, plan)
    try:
        load = run_load(plan, driver, downstreams, started)
        progress(f"memory: {plan.memory_requests[1]:,} requests to a fresh {SERVICE_HTTPX.key}")
        memory = rss_growth(fresh, driver, plan)
        stop(fresh)
        return measure_rest(plan, context, driver, started["fast"], load, memory)
    finally:
        driver.close()


def measure_rest(
    plan: Plan,
    context: Context,
    driver: Driver,
    fast_targets: dict[str, Server],
    load: list[dict[str, Any]],
    memory: dict[str, Any],
) -> dict[str, Any]:
    """Micro-benchmarks, verdicts, and a profile of each missed load target."""
    micro = run_micro(context, plan)
    slow_result = next(s for s in load if s["downstream"] == "slow")
    degrade_result = next(s for s in load if s["downstream"] == "degrade")
    deadlines = {
        key: (counters or {}).get("config", {}).get("deadline_seconds") or float("nan")
        for key, counters in slow_result["service_counters"].items()
    }
    found = [
        *verdicts.load_verdicts(load),
        *verdicts.slow_verdicts(slow_result, deadlines),
        *verdicts.degrade_verdicts(degrade_result),
        *verdicts.micro_verdicts(micro),
        verdicts.memory_verdict(memory),
    ]
    missed_load = [v for v in found if not v["met"] and v["key"].startswith(PROFILED_VERDICTS)]
    profiles = run_profiles(context, plan, driver, fast_targets, missed_load)
    return {"load": load, "memory": memory, "micro": micro, "verdicts": found, "profiles": profiles}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def remove_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        if child.is_dir() and not child.is_symlink():
            child.rmdir()
        else:
            child.unlink()
    path.rmdir()


if __name__ == "__main__":
    sys.exit(main())
