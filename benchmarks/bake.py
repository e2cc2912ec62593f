"""Bake the service under test, once per HTTP client option, into a scratch folder.

The benchmark measures what a user gets from ``cookiecutter`` with the defaults, so it bakes the
template from this checkout (hooks included) rather than importing the template's files.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bake:
    http_client: str
    project: Path
    package: str

    @property
    def src(self) -> Path:
        return self.project / "src"

    @property
    def env_prefix(self) -> str:
        return self.package.upper() + "_"


def bake(output_dir: Path, http_client: str, **answers: str) -> Bake:
    """The default bake with ``http_client`` (and any other ``answers``) chosen, made by the
    cookiecutter CLI."""
    target = output_dir / "-".join([http_client, *(f"{k}-{v}" for k, v in answers.items())])
    target.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "cookiecutter",
        "--no-input",
        "--output-dir",
        str(target),
        str(TEMPLATE),
        f"http_client={http_client}",
        *(f"{name}={value}" for name, value in answers.items()),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(
            f"baking http_client={http_client} failed:\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )
    projects = [p for p in target.iterdir() if (p / "pyproject.toml").is_file()]
    if len(projects) != 1:
        raise RuntimeError(f"expected one baked project in {target}, found {projects}")
    project = projects[0]
    packages = [p for p in (project / "src").iterdir() if (p / "__main__.py").is_file()]
    if len(packages) != 1:
        raise RuntimeError(f"expected one service package under {project / 'src'}")
    return Bake(http_client, project, packages[0].name)
