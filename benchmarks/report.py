"""Write ``latest.json`` (everything) and ``latest.md`` (the tables), and print the tables.

The Markdown is generated from the JSON alone, so the two can never disagree. A hand-written
``analysis.md`` beside this module (what the profiles showed, the proposed fixes) is appended
verbatim: figures change every run, the reading of them is written by a person.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ANALYSIS = Path(__file__).with_name("analysis.md")
SCHEMA = 1


def num(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def spread_text(s: dict[str, float], digits: int = 0, unit: str = "") -> str:
    return f"{num(s['median'], digits)}{unit} [{num(s['min'], digits)}-{num(s['max'], digits)}]"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def header_section(result: dict[str, Any]) -> list[str]:
    machine = result["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated {result['finished_at']} by `{result['command']}` ({result['plan']['name']} "
        f"plan, {num(result['duration_seconds'])} s). Figures are medians [min-max] over "
        f"{result['plan']['repeats']} alternated round(s); nothing here is asserted by a test.",
        "",
        *table(
            ["machine", ""],
            [
                ["CPU", f"{machine['cpu']} ({machine['cpus_usable']} usable)"],
                ["memory", f"{machine['memory_gib']} GiB"],
                ["platform", machine["platform"]],
                ["pinning", machine["pinning"]["described"]],
                [
                    "load average (start / end)",
                    f"{machine['load_average_at_start']} / {machine['load_average_at_end']}",
                ],
                ["load generator", result["load_generator"]],
            ],
        ),
        "",
        *table(["library", "version"], [[k, v] for k, v in result["versions"].items()]),
        "",
    ]
    return lines


def verdict_section(result: dict[str, Any]) -> list[str]:
    rows = []
    for v in result["verdicts"]:
        digits = 2 if "throughput" in v["goal"] else 1
        rows.append(
            [
                v["goal"],
                f"{num(v['median'], digits)} [{num(v['min'], digits)}-{num(v['max'], digits)}]",
                "met" if v["met"] else "**missed**",
            ]
        )
    return ["## Targets", "", *table(["target", "measured", "verdict"], rows), ""]


def load_section(result: dict[str, Any]) -> list[str]:
    lines = [
        "## Throughput and latency (fast downstream)",
        "",
        "ok/s counts 2xx answers only. CPU/req is the server's own CPU time per answered request "
        "(from /proc), the figure least disturbed by other tenants. rig = load generator + "
        "downstream CPU, in cores; below 1.0 means they were not the bottleneck.",
        "",
    ]
    for scenario in result["load"]:
        lines += scenario_table(scenario)
    return lines


def scenario_table(scenario: dict[str, Any]) -> list[str]:
    rows = []
    reference = scenario["targets"].get("reference")
    reference_cpu = reference["summary"]["target_cpu_us_per_request"]["median"] if reference else 0
    for target in scenario["targets"].values():
        s = target["summary"]
        cpu = s["target_cpu_us_per_request"]["median"]
        other = {k: v for k, v in s["statuses"].items() if k != "200"}
        rows.append(
            [
                target["label"],
                spread_text(s["ok_rps"]),
                spread_text(s["p50_ms"], 1),
                spread_text(s["p99_ms"], 1),
                num(s["max_ms"]["max"], 1),
                spread_text(s["target_cpu_us_per_request"]),
                f"{cpu / reference_cpu:.1f}x" if reference_cpu else "-",
                num(s["rig_cpu_busy"]["max"], 2),
                ", ".join(f"{k}: {v}" for k, v in s["reasons"].items()) or str(other or "-"),
            ]
        )
    lines = [
        f"### {scenario['title']}",
        "",
        *table(
            [
                "target",
                "ok/s",
                "p50 ms",
                "p99 ms",
                "max ms",
                "CPU/req us",
                "CPU vs (5)",
                "rig",
                "errors",
            ],
            rows,
        ),
        "",
    ]
    if scenario["ratios"]:
        ratio_rows = [
            [
                name.replace("service_httpcore", "(6)")
                .replace("service_httpx2", "(4)")
                .replace("service_httpx", "(1)")
                .replace("bare_shared", "(2)")
                .replace("per_request", "(3)")
                .replace("reference", "(5)"),
                spread_text(r["throughput"], 2),
                spread_text(r["cpu_efficiency"], 2),
            ]
            for name, r in scenario["ratios"].items()
        ]
        lines += [
            *table(["ratio", "throughput", "CPU efficiency (inverse CPU/req)"], ratio_rows),
            "",
        ]
    for key, debug in scenario.get("service_counters", {}).items():
        if debug:
            lines.append(f"- `{key}` /debug/downstreams after the scenario: {json.dumps(debug)}")
    if scenario.get("service_counters"):
        lines.append("")
    return lines


def micro_section(result: dict[str, Any]) -> list[str]:
    names = [
        ("raw_client_get", "raw `client.get` on MockTransport"),
        ("pipeline_get", "`Downstream.get` on the same transport"),
        ("pipeline_overhead", "pipeline overhead (difference, paired by round)"),
        ("breaker_open_get", "`Downstream.get` with the breaker forced open"),
        ("pool_plain", "httpcore pool, in-memory backend, no trace"),
        ("pool_traced", "same, with `AttemptTrace` as the trace extension"),
        ("trace_overhead", "trace overhead (difference)"),
    ]
    clients = list(result["micro"])
    rows = [
        [label, *(spread_text(result["micro"][c][key], 1) for c in clients)] for key, label in names
    ]
    return [
        "## In-process costs (CPU us per call, no sockets)",
        "",
        f"{result['plan']['micro_rounds']} interleaved rounds of {result['plan']['micro_calls']:,} "
        "calls; process CPU time, so a preempted round is not charged to the code.",
        "",
        *table(["measurement", *(f"{c} bake" for c in clients)], rows),
        "",
    ]


def memory_section(result: dict[str, Any]) -> list[str]:
    m = result["memory"]
    rss = m["rss_kib"]
    first, second = m["requests"]
    lines = [
        "## Memory",
        "",
        f"`{m['target']}`, fresh process, C={m['concurrency']}: VmRSS "
        f"{num(rss['start'] / 1024, 1)} MiB at start, "
        f"{num(rss['after_first'] / 1024, 1)} MiB after {first:,} requests, "
        f"{num(rss['after_second'] / 1024, 1)} MiB after {second:,} "
        f"(growth {num(m['growth_percent'], 2)} %; {m['ok']:,} of {m['answered']:,} answered ok).",
        "",
    ]
    if m["capped"]:
        planned = m["requests_planned"][1]
        lines.insert(
            -1,
            f"The run stopped at its {num(m['seconds_cap'])} s cap before {planned:,} requests: "
            "this machine was too slow (or too busy) for the planned count.",
        )
    return lines


def profile_section(result: dict[str, Any]) -> list[str]:
    if not result["profiles"]:
        return []
    lines = ["## Profiles of missed targets (py-spy, this run)", ""]
    for p in result["profiles"]:
        if "skipped" in p:
            lines += [f"- skipped: {p['skipped']}", ""]
            continue
        lines += [
            f"### `{p['target']}` at C={p['concurrency']} ({p['samples']} samples, "
            f"{num(p['ok_rps_while_sampled'])} ok/s while sampled)",
            "",
            "Self time by library: "
            + ", ".join(f"{name} {share} %" for name, share in p["self_by_library_percent"]),
            "",
            "Samples inside: "
            + ", ".join(f"{name} {share} %" for name, share in p.get("markers_percent", [])),
            "",
            *table(
                ["hottest functions (self)", "%"],
                [[f"`{n}`", str(s)] for n, s in p["self_by_function_percent"]],
            ),
            "",
            *table(
                ["service functions (inclusive)", "%"],
                [[f"`{n}`", str(s)] for n, s in p["service_inclusive_percent"]],
            ),
            "",
        ]
    return lines


def render(result: dict[str, Any], *, with_analysis: bool) -> str:
    lines = [
        *header_section(result),
        *verdict_section(result),
        *load_section(result),
        *micro_section(result),
        *memory_section(result),
        *profile_section(result),
    ]
    if with_analysis and ANALYSIS.is_file():
        lines += [ANALYSIS.read_text().rstrip(), ""]
    return "\n".join(lines)


def without_nan(value: Any) -> Any:
    """NaN (a figure that could not be measured) as null: latest.json stays strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(v) for v in value]
    return value


def write(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "latest.json"
    md_path = out_dir / "latest.md"
    document = without_nan({"schema": SCHEMA, **result})
    json_path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    md_path.write_text(render(result, with_analysis=True))
    return json_path, md_path
