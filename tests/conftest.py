"""Fixtures for the template's own tests: bake the template and inspect the result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

TEMPLATE = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(
    command: list[str], cwd: Path, *, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool from this environment; fail the test with its output when it fails."""
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "POOL_"))}
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**clean_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def bake_project(cookies: Any, **answers: str) -> Path:
    result = cookies.bake(extra_context=answers)
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    project: Path = result.project_path
    assert project.is_dir()
    return project
