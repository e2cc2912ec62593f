"""A run whose load generators were saturated or went missing is ``invalid``: not pass, not fail."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.saturation import (
    EXIT_STATUS,
    FAIL,
    INVALID,
    PASS,
    WorkerLoad,
    document_fields,
    format_generators,
    read_outcome,
)


def worker(name: str, cpu: float | None = 40.0, *, missing: bool = False) -> WorkerLoad:
    return WorkerLoad(name, requests=3000, seconds=60.0, peak_cpu=cpu, missing=missing)


def test_healthy_generators_leave_the_slo_verdict_alone() -> None:
    loads = [worker("a"), worker("b")]
    assert document_fields(loads, 2, slos_passed=True)["verdict"] == PASS
    assert document_fields(loads, 2, slos_passed=False)["verdict"] == FAIL


def test_a_worker_above_90_percent_cpu_invalidates_even_a_passing_run() -> None:
    fields = document_fields([worker("a"), worker("b", cpu=97.0)], 2, slos_passed=True)
    assert fields["verdict"] == INVALID
    assert fields["generators"]["problems"] == ["b: CPU 97 % > 90 %"]
    assert document_fields([worker("a", cpu=90.0)], 1, slos_passed=False)["verdict"] == FAIL


def test_a_missing_or_unsampled_worker_invalidates_the_run() -> None:
    assert document_fields([worker("a"), worker("b", missing=True)], 2, True)["verdict"] == INVALID
    assert document_fields([worker("a", cpu=None)], 1, True)["verdict"] == INVALID
    fields = document_fields([worker("a")], 2, slos_passed=False)  # one never connected
    assert fields["verdict"] == INVALID
    assert fields["generators"]["problems"] == ["1 of 2 expected workers reported"]


def test_invalid_has_its_own_exit_status() -> None:
    assert len({EXIT_STATUS[PASS], EXIT_STATUS[FAIL], EXIT_STATUS[INVALID]}) == 3
    assert EXIT_STATUS[PASS] == 0


def test_the_report_says_requests_per_second_per_worker(tmp_path: Path) -> None:
    loads = [worker("a"), worker("b", cpu=95.0)]
    table = format_generators(loads)
    assert "50.0" in table  # 3000 requests in 60 s
    assert "CPU 95 % > 90 %" in table
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(document_fields(loads, 2, slos_passed=True)))
    result, read, problems = read_outcome(path)
    assert (result, read, problems) == (INVALID, loads, ["b: CPU 95 % > 90 %"])


def test_a_starved_worker_is_invalid_though_it_uses_little_cpu() -> None:
    starved = WorkerLoad("b", requests=300, seconds=60.0, peak_cpu=3.0, cpu_demand=97.0)
    fields = document_fields([worker("a"), starved], 2, slos_passed=True)
    assert fields["verdict"] == INVALID
    assert fields["generators"]["problems"] == ["b: CPU demand 97 % > 90 % (starved)"]


def test_the_report_says_what_one_worker_could_drive_at_the_cpu_limit() -> None:
    load = WorkerLoad("a", requests=6000, seconds=60.0, peak_cpu=30.0, cpu_seconds=12.0)
    assert load.capacity_per_second == 450.0  # 500 requests a CPU-second, at 90 %
    assert "450" in format_generators([load])
    assert WorkerLoad("b", 0, 60.0, 30.0).capacity_per_second is None
    starved = WorkerLoad("c", 3000, 60.0, 2.0, missing=True, cpu_demand=95.0, cpu_seconds=1.0)
    assert starved.capacity_per_second is None
