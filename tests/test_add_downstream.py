"""Follow the service README's "Add a downstream" literally on a fresh bake, then prove it.

The README's code blocks are the steps: each is written where the README says, nothing else is
edited. The bake must lint, type-check and pass its tests, and the quick load test must report
SLO rows for the new route while its faults target the new downstream.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, bake_project, run
from tests.test_loadtest import explain, only_run_folder, run_quick_loadtest

pytestmark = pytest.mark.loadtest
STEP_FILE = re.compile(r"`((?:src|tests)/[^`]+\.py|deploy/k8s/base/downstreams\.env)`")
CODE_BLOCK = re.compile(r"```(?:python|dotenv)\n(.*?)\n\s*```", re.DOTALL)


def readme_steps(project: Path) -> list[tuple[Path, str]]:
    """(file, code) for each numbered step of "Add a downstream" that carries a code block."""
    readme = (project / "README.md").read_text()
    section = readme.split("## Add a downstream", 1)[1].split("\n## ", 1)[0]
    steps = re.split(r"\n(?=\d+\. )", section)
    found = []
    for step in steps:
        block = CODE_BLOCK.search(step)
        target = STEP_FILE.search(step)
        if block and target:
            found.append((project / target.group(1), textwrap.dedent(block.group(1)) + "\n"))
    return found


def follow(project: Path) -> list[str]:
    """Apply the steps; returns the files touched, relative to the project."""
    touched = []
    for path, code in readme_steps(project):
        if path.exists():  # the declaration: one line added to the existing module
            path.write_text(path.read_text() + code)
        else:
            path.write_text(code)
        touched.append(str(path.relative_to(project)))
    return touched


def test_adding_inventory_by_the_readme_is_three_files_and_is_load_tested(
    cookies_session: Any, tmp_path: Path
) -> None:
    project = bake_project(cookies_session, project_name="Add Downstream")
    package = "add_downstream"
    touched = follow(project)
    assert touched == [  # three files of code, then the environment values
        f"src/{package}/downstreams.py",
        f"src/{package}/routes/stock.py",
        "tests/routes/test_stock.py",
        "deploy/k8s/base/downstreams.env",
    ]
    run([str(BIN / "ruff"), "check", "."], project)
    run([str(BIN / "ruff"), "format", "--check", "."], project)
    run([str(BIN / "mypy"), "--cache-dir", str(tmp_path / "mypy")], project)
    pytest_command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    run(pytest_command, project, timeout=900)  # the whole suite still passes
    stock = run([*pytest_command, "tests/routes/test_stock.py"], project)
    assert "2 passed" in stock.stdout, stock.stdout[-2000:]

    reports = tmp_path / "reports"
    reports.mkdir()
    result = run_quick_loadtest(project, reports)
    verdict = json.loads((only_run_folder(reports) / "verdict.json").read_text())
    stock_rows = [v for v in verdict["verdicts"] if v["slo"].endswith("GET /stock/{sku}")]
    phases_seen = {v["phase"].split("-", 1)[1] for v in stock_rows}
    assert phases_seen >= {"baseline", "hang", "refused", "idle-close", "recovered"}
    assert all(v["passed"] for v in stock_rows), explain(result)
    slow = next(p for p in verdict["phases"] if p["name"] == "2-slow")
    assert {"target": "inventory", "mode": "slow"}.items() <= next(
        f for f in slow["faults"] if f["target"] == "inventory"
    ).items()
    baseline_end = verdict["windows"]["1-baseline"]["end"]["fault"]
    assert baseline_end["inventory"] > 0  # the route's calls reached the inventory target
