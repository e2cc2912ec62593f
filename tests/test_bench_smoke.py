"""`make bench` cannot rot: one quick run of the harness, checked for the shape of its results.

Only structure is asserted (every target, scenario, micro-benchmark and verdict is there, with
figures that are numbers, and the settings the harness promised were applied); timing never is:
the figures belong to the machine, not to the code.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest

from tests.conftest import TEMPLATE, run

FAST_TARGETS = {
    "service_httpx",
    "bare_shared",
    "per_request",
    "service_httpx2",
    "reference",
    "service_httpcore",
}
SLOW_TARGETS = {"service_httpx", "bare_shared", "service_httpx2", "reference"}
DEGRADE_TARGETS = {"service_fixed_8", "service_fixed_16", "service_fixed_32", "service_adaptive"}
MICRO_FIGURES = {
    "raw_client_get",
    "pipeline_get",
    "pipeline_overhead",
    "breaker_open_get",
    "pool_plain",
    "pool_traced",
    "trace_overhead",
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    before = committed_results_stamp()
    result = run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=TEMPLATE,
        timeout=300,
    )
    return {
        "json": json.loads((out / "latest.json").read_text()),
        "markdown": (out / "latest.md").read_text(),
        "stdout": result.stdout,
        "committed_before": before,
        "committed_after": committed_results_stamp(),
    }


def committed_results_stamp() -> list[int | None]:
    """Modification times of the committed results: ``--out`` must keep a smoke run away."""
    results = TEMPLATE / "benchmarks" / "results"
    return [
        path.stat().st_mtime_ns if path.exists() else None
        for path in (results / "latest.json", results / "latest.md")
    ]


def finite(spread: dict[str, float]) -> bool:
    return all(math.isfinite(spread[k]) for k in ("median", "min", "max"))


def scenarios(bench: dict[str, Any], downstream: str) -> list[dict[str, Any]]:
    return [s for s in bench["json"]["load"] if s["downstream"] == downstream]


def test_every_fast_scenario_measured_every_target(bench: dict[str, Any]) -> None:
    fast = scenarios(bench, "fast")
    assert [s["concurrency"] for s in fast] == bench["json"]["plan"]["concurrencies"]
    for scenario in fast:
        assert set(scenario["targets"]) == FAST_TARGETS
        for target in scenario["targets"].values():
            summary = target["summary"]
            assert summary["statuses"].get("200", 0) > 0, target["label"]
            assert len(target["runs"]) == bench["json"]["plan"]["repeats"]
            assert finite(summary["ok_rps"]) and finite(summary["target_cpu_us_per_request"])
        assert {
            "service_httpx/bare_shared",
            "service_httpx/per_request",
            "service_httpx/reference",
            "service_httpx/service_httpcore",
        } <= set(scenario["ratios"])


def test_slow_scenario_ran_with_a_pool_of_ten(bench: dict[str, Any]) -> None:
    (slow,) = scenarios(bench, "slow")
    assert slow["concurrency"] == 100
    assert set(slow["targets"]) == SLOW_TARGETS
    for key in ("service_httpx", "service_httpx2"):
        config = slow["service_counters"][key]["config"]
        assert config["limits"]["max_connections"] == 10
        assert config["bulkhead"]["max_concurrency"] == 10
        assert config["deadline_seconds"] > 0


def test_degrade_scenario_ran_each_fixed_width_and_the_adaptive_bulkhead(
    bench: dict[str, Any],
) -> None:
    (degrade,) = scenarios(bench, "degrade")
    assert set(degrade["targets"]) == DEGRADE_TARGETS
    for key, width in (("service_fixed_8", 8), ("service_fixed_16", 16), ("service_fixed_32", 32)):
        config = degrade["service_counters"][key]["config"]
        assert config["bulkhead"]["max_concurrency"] == width
        assert not config["bulkhead"]["adaptive"]
    adaptive = degrade["service_counters"]["service_adaptive"]
    assert adaptive["config"]["bulkhead"]["adaptive"]
    assert adaptive["bulkhead"]["adaptive"]["maximum"] == 32  # the pool's width
    assert {f"service_adaptive/service_fixed_{w}" for w in (8, 16, 32)} <= set(degrade["ratios"])


def test_micro_benchmarks_ran_the_pipeline_of_both_bakes(bench: dict[str, Any]) -> None:
    micro = bench["json"]["micro"]
    assert set(micro) == {"httpx", "httpx2"}
    for client, figures in micro.items():
        assert set(figures) >= MICRO_FIGURES
        assert all(finite(figures[name]) for name in MICRO_FIGURES)
        assert figures["library"].startswith(client + " ")
        assert figures["outcomes"].get("ok", 0) > 0  # the pipeline answered, not just raised


def test_memory_was_read_from_the_service_process(bench: dict[str, Any]) -> None:
    memory = bench["json"]["memory"]
    first, second = memory["requests"]
    assert 0 < first < second
    assert all(kib > 0 for kib in memory["rss_kib"].values())


def test_every_target_of_the_issue_has_a_verdict(bench: dict[str, Any]) -> None:
    verdicts = {v["key"]: v for v in bench["json"]["verdicts"]}
    expected = {
        "service_vs_shared_c10",
        "cpu_cut_c10",
        "tail_c10",
        "stretch_cpu_c10",
        "slow_downstream_service_httpx",
        "slow_downstream_service_httpx2",
        "pipeline_overhead_httpx",
        "breaker_open_httpx",
        "rss_growth",
        "adaptive_goodput",
        "adaptive_tail",
    } | {
        f"service_vs_{baseline}_c{c}"
        for c in bench["json"]["plan"]["concurrencies"]
        for baseline in ("shared", "per_request")
    }
    assert expected <= set(verdicts)
    for verdict in verdicts.values():
        assert isinstance(verdict["met"], bool)
        assert math.isfinite(verdict["median"]), verdict["key"]


def test_markdown_and_stdout_carry_machine_versions_and_command(bench: dict[str, Any]) -> None:
    for text in (bench["markdown"], bench["stdout"]):
        assert "python -m benchmarks --quick" in text
        assert "| pinning |" in text
        assert "| httpx |" in text and "| httpx2 |" in text
        assert "## Targets" in text
    # Every target's CPU a request against the reference's, in the same run.
    assert "| CPU vs (5) |" in bench["markdown"]
    assert "(5) reference: raw ASGI, one aiohttp session | " in bench["markdown"]


def test_the_committed_results_were_left_alone(bench: dict[str, Any]) -> None:
    assert bench["committed_before"] == bench["committed_after"]
