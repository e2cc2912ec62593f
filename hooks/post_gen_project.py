"""Remove the files of options that are off, then print the next commands.

One declarative manifest maps each yes/no option to the paths it owns; adding an option means adding
a line here, not a function. No network at generation time: no ``uv sync``, no ``git``, no docker.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

ANSWERS: dict[str, str] = json.loads(r"""{{ cookiecutter | tojson }}""")

# option -> paths (relative to the generated project) that exist only when the option is "yes".
OPTION_PATHS: dict[str, tuple[str, ...]] = {
    "include_docker": (
        "Dockerfile",
        ".dockerignore",
        ".hadolint.yaml",
        ".github/workflows/docker.yml",
    ),
    "include_k8s": ("deploy", "tests/unit/test_deploy_settings.py"),
    "opentelemetry": (
        "src/{{ cookiecutter.package_name }}/telemetry.py",
        "tests/integration/test_tracing.py",
        "loadtest/collector.py",
        "tests/unit/test_telemetry.py",
    ),
}


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def remove_this_copy() -> None:
    """cookiecutter runs a hook from a rendered copy in the temp directory and leaves the copy
    there (cookiecutter#886, kept upstream): without this, every bake leaves two files behind."""
    here = Path(__file__).resolve()
    if here.parent == Path(tempfile.gettempdir()).resolve():
        here.unlink(missing_ok=True)


def main() -> None:
    project = Path.cwd()
    for option, paths in OPTION_PATHS.items():
        if ANSWERS[option] != "yes":
            for relative in paths:
                remove(project / relative)
    print(
        f"\nCreated {ANSWERS['service_slug']} in {project}\n\nNext:\n"
        f"  cd {project}\n"
        "  git init && git add -A && git commit -m 'Initial commit from pool-service'\n"
        "  make install    # .venv from the system Python; writes uv.lock: commit it\n"
        "  make test       # the service's own tests, against real local servers\n"
        "  make run        # serves http://127.0.0.1:8000/healthz\n"
        "  make loadtest PROFILE=quick   # prove the pool survives exhaustion\n"
    )


if __name__ == "__main__":
    remove_this_copy()
    main()
