"""``python -m benchmarks.hedging`` cannot rot: one short run on a bake, checked for the shape of
its table (every configuration, figures that are numbers), never for its timing."""

from __future__ import annotations

import sys
from typing import Any

from tests.conftest import TEMPLATE, bake_project, run

CONFIGURATIONS = ("off", "fixed 20 ms", "p90")


def test_the_hedging_benchmark_prints_a_row_per_configuration(cookies: Any) -> None:
    project = bake_project(cookies)
    command = [sys.executable, "-m", "benchmarks.hedging", "--project", str(project)]
    output = run([*command, "--rounds", "1", "--calls", "200"], cwd=TEMPLATE, timeout=120).stdout
    rows = {
        cells[0]: cells[1:]
        for line in output.splitlines()
        if line.startswith("| ") and not line.startswith("| hedging")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert set(rows) == set(CONFIGURATIONS), output
    for name, (p50, p99, p999, extra, sent) in rows.items():
        assert 0 < float(p50) <= float(p99) <= float(p999), (name, output)
        assert int(extra.split()[0]) <= int(sent), (name, output)
    assert rows["off"][-1] == "0"
