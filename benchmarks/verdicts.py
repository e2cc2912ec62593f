"""The issue's targets, checked against the figures. Reported, never asserted.

Each verdict carries the goal, the figure it was judged on (a median), its min-max, and the
evidence that goes with it, so a reader can disagree with the verdict from the report alone.
"""

from __future__ import annotations

import math
from typing import Any

from .stats import paired_ratios

ThroughputGoals = {1: 1.0, 10: 1.0, 100: 1.3}
PER_REQUEST_GOAL = 10.0
CPU_CUT_GOAL = 2.0  # (6)'s CPU per request over (1)'s: the default costs at most half of before
TAIL_FACTOR, TAIL_SLACK_MS = 2.0, 50.0  # (1)'s p99 <= 2 x the reference's + 50 ms
STRETCH_CPU_US = 400.0
ENGINE_CONCURRENCY = 10
PIPELINE_OVERHEAD_US = 50.0
BREAKER_OPEN_US = 20.0
RSS_GROWTH_PERCENT = 10.0


def verdict(
    key: str, goal: str, median: float, low: float, high: float, met: bool, **evidence: Any
) -> dict[str, Any]:
    return {
        "key": key,
        "goal": goal,
        "median": median,
        "min": low,
        "max": high,
        "met": bool(met) and not math.isnan(median),
        "evidence": evidence,
    }


def load_verdicts(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for scenario in scenarios:
        if scenario["downstream"] != "fast":
            continue
        c = scenario["concurrency"]
        ratios = scenario["ratios"]
        pair = ratios.get("service_httpx/bare_shared")
        if pair and c in ThroughputGoals:
            t = pair["throughput"]
            goal = ThroughputGoals[c]
            found.append(
                verdict(
                    f"service_vs_shared_c{c}",
                    f"(1)/(2) throughput >= {goal} at C={c}",
                    t["median"],
                    t["min"],
                    t["max"],
                    t["median"] >= goal,
                    concurrency=c,
                    cpu_efficiency_ratio=pair["cpu_efficiency"]["median"],
                )
            )
        pair = ratios.get("service_httpx/per_request")
        if pair:
            t = pair["throughput"]
            found.append(
                verdict(
                    f"service_vs_per_request_c{c}",
                    f"(1)/(3) throughput >= {PER_REQUEST_GOAL:g} at C={c}",
                    t["median"],
                    t["min"],
                    t["max"],
                    t["median"] >= PER_REQUEST_GOAL,
                    concurrency=c,
                    cpu_efficiency_ratio=pair["cpu_efficiency"]["median"],
                )
            )
        if c == ENGINE_CONCURRENCY:
            found += engine_verdicts(scenario)
    return found


def engine_verdicts(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """The default bake against the default before it (6) and against the reference (5)."""
    c = scenario["concurrency"]
    targets = scenario["targets"]
    found = []
    pair = scenario["ratios"].get("service_httpx/service_httpcore")
    if pair:
        e = pair["cpu_efficiency"]
        found.append(
            verdict(
                f"cpu_cut_c{c}",
                f"(6)/(1) CPU per request >= {CPU_CUT_GOAL:g} at C={c} (half of the old default)",
                e["median"],
                e["min"],
                e["max"],
                e["median"] >= CPU_CUT_GOAL,
                concurrency=c,
            )
        )
    if "service_httpx" in targets and "reference" in targets:
        p99 = targets["service_httpx"]["summary"]["p99_ms"]
        limit = TAIL_FACTOR * targets["reference"]["summary"]["p99_ms"]["median"] + TAIL_SLACK_MS
        found.append(
            verdict(
                f"tail_c{c}",
                f"(1) p99 at C={c} <= {TAIL_FACTOR:g} x (5)'s p99 + {TAIL_SLACK_MS:g} ms",
                p99["median"],
                p99["min"],
                p99["max"],
                p99["median"] <= limit,
                concurrency=c,
                limit_ms=round(limit, 1),
            )
        )
        cpu = targets["service_httpx"]["summary"]["target_cpu_us_per_request"]
        found.append(
            verdict(
                f"stretch_cpu_c{c}",
                f"stretch: (1) CPU per request at C={c} <= {STRETCH_CPU_US:g} us",
                cpu["median"],
                cpu["min"],
                cpu["max"],
                cpu["median"] <= STRETCH_CPU_US,
                concurrency=c,
            )
        )
    return found


def micro_verdicts(micro: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for client, figures in micro.items():
        overhead = figures["pipeline_overhead"]
        found.append(
            verdict(
                f"pipeline_overhead_{client}",
                f"pipeline overhead <= {PIPELINE_OVERHEAD_US:g} us/call ({client} bake)",
                overhead["median"],
                overhead["min"],
                overhead["max"],
                overhead["median"] <= PIPELINE_OVERHEAD_US,
                raw_client_get_us=figures["raw_client_get"]["median"],
            )
        )
        open_ = figures["breaker_open_get"]
        found.append(
            verdict(
                f"breaker_open_{client}",
                f"open-breaker fail-fast <= {BREAKER_OPEN_US:g} us/call ({client} bake)",
                open_["median"],
                open_["min"],
                open_["max"],
                open_["median"] <= BREAKER_OPEN_US,
            )
        )
    return found


def memory_verdict(memory: dict[str, Any]) -> dict[str, Any]:
    growth = memory["growth_percent"]
    first, second = memory["requests"]
    return verdict(
        "rss_growth",
        f"RSS growth {first:,} -> {second:,} requests <= {RSS_GROWTH_PERCENT:g} %",
        growth,
        growth,
        growth,
        growth <= RSS_GROWTH_PERCENT,
        rss_kib=memory["rss_kib"],
    )


def pool_timeouts(summary: dict[str, Any]) -> int:
    return sum(
        n
        for reason, n in summary["reasons"].items()
        if "pool_exhausted" in reason or "PoolTimeout" in reason
    )


def sheds(summary: dict[str, Any]) -> int:
    return sum(n for reason, n in summary["reasons"].items() if reason.endswith(":shed"))


def slow_verdicts(scenario: dict[str, Any], deadlines: dict[str, float]) -> list[dict[str, Any]]:
    found = []
    for key, deadline in deadlines.items():
        summary = scenario["targets"][key]["summary"]
        p99 = summary["p99_ms"]
        timeouts = pool_timeouts(summary)
        found.append(
            verdict(
                f"slow_downstream_{key}",
                f"slow downstream, C={scenario['concurrency']}, pool 10 ({key}): p99 of every "
                f"run <= deadline ({deadline:g} s) and no PoolTimeout",
                p99["median"],
                p99["min"],
                p99["max"],
                p99["max"] <= deadline * 1000 and timeouts == 0,
                deadline_ms=deadline * 1000,
                pool_timeouts=timeouts,
                sheds=sheds(summary),
                statuses=summary["statuses"],
            )
        )
    return found


ADAPTIVE_GOODPUT_GOAL = 1.0  # the issue's: at least the best fixed bulkhead's goodput


def degrade_verdicts(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """The adaptive bulkhead against the fixed widths on the degrading downstream, paired by
    round: its goodput over the best fixed width's in that round (a width chosen in hindsight),
    and the p99 of the widest fixed one (the pool's, what a team that guessed too wide gets) over
    its own."""
    targets = scenario["targets"]
    adaptive = targets.get("service_adaptive")
    fixed = {key: t for key, t in targets.items() if key.startswith("service_fixed_")}
    if adaptive is None or not fixed:
        return []
    rounds = range(len(adaptive["runs"]))
    best = [max(t["runs"][i]["ok_rps"] for t in fixed.values()) for i in rounds]
    goodput = paired_ratios([r["ok_rps"] for r in adaptive["runs"]], best)
    widest = fixed[max(fixed, key=lambda key: int(key.rsplit("_", 1)[1]))]
    tail = paired_ratios(
        [r["latency_ms"].get("p99", math.nan) for r in widest["runs"]],
        [r["latency_ms"].get("p99", math.nan) for r in adaptive["runs"]],
    )
    sizes = {key: t["summary"]["ok_rps"]["median"] for key, t in fixed.items()}
    return [
        verdict(
            "adaptive_goodput",
            f"degrading downstream: adaptive bulkhead goodput >= {ADAPTIVE_GOODPUT_GOAL} x the "
            "best fixed width's (chosen in hindsight, per round)",
            goodput["median"],
            goodput["min"],
            goodput["max"],
            goodput["median"] >= ADAPTIVE_GOODPUT_GOAL,
            fixed_ok_rps=sizes,
            adaptive_ok_rps=adaptive["summary"]["ok_rps"]["median"],
        ),
        verdict(
            "adaptive_tail",
            "degrading downstream: the widest fixed bulkhead's p99 / the adaptive one's > 1",
            tail["median"],
            tail["min"],
            tail["max"],
            tail["median"] > 1.0,
            adaptive_p99_ms=adaptive["summary"]["p99_ms"]["median"],
            widest_p99_ms=widest["summary"]["p99_ms"]["median"],
        ),
    ]
