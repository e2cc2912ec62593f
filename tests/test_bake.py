"""Bake every value of every option; each bake must be clean, typed, linted and pass its tests.

The generated projects' dependencies are already in this environment (requirements-dev.txt), so
each bake is checked with this interpreter's ruff, mypy and pytest, not a fresh install.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIN, TEMPLATE, bake_project, run

BAKES: dict[str, dict[str, str]] = {
    "defaults": {},
    "httpx2": {"http_client": "httpx2"},
    "http1-only": {"http2": "no"},
    "python-3.12": {"python_version": "3.12"},
    "python-3.13": {"python_version": "3.13"},
    "docker-only": {"include_k8s": "no"},
    "no-containers": {"include_docker": "no", "include_k8s": "no"},
    "no-opentelemetry": {"opentelemetry": "no"},
}
# Bakes whose Python code differs run the whole generated suite; the others differ only in
# metadata and optional files, so their slow (real-load) tests would prove nothing new.
# no-opentelemetry is one of the others: without OTEL_* variables the defaults bake already runs
# the same untraced pipeline (spans.NO_SPANS) through its slow tests.
FULL_SUITE = {"defaults", "httpx2", "http1-only"}
OTEL_IMPORT = re.compile(r"^\s*(import|from)\s+opentelemetry\b", re.M)


def option_paths() -> dict[str, tuple[str, ...]]:
    """The post-gen hook's manifest (option -> the paths it owns), read from the hook itself."""
    tree = ast.parse((TEMPLATE / "hooks" / "post_gen_project.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "OPTION_PATHS":
            assert node.value is not None
            manifest: dict[str, tuple[str, ...]] = ast.literal_eval(node.value)
            return manifest
    raise AssertionError("hooks/post_gen_project.py has no OPTION_PATHS manifest")


OPTION_FILES = option_paths()
LEFTOVER_JINJA = re.compile(r"\{\{\s*cookiecutter|\{%")


@pytest.fixture(scope="module", params=sorted(BAKES))
def baked(request: pytest.FixtureRequest, cookies_session: Any) -> tuple[str, Path]:
    name: str = request.param
    return name, bake_project(cookies_session, **BAKES[name])


def answers_for(name: str) -> dict[str, str]:
    defaults = {
        "http_client": "httpx",
        "http2": "yes",
        "python_version": "3.11",
        "include_docker": "yes",
        "include_k8s": "yes",
        "opentelemetry": "yes",
    }
    return {**defaults, **BAKES[name]}


def test_no_template_syntax_survives(baked: tuple[str, Path]) -> None:
    _, project = baked
    leftovers = [
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and LEFTOVER_JINJA.search(path.read_text(errors="replace"))
    ]
    assert leftovers == []


def test_option_files_follow_the_answers(baked: tuple[str, Path]) -> None:
    name, project = baked
    answers = answers_for(name)
    package = project.name.replace("-", "_")
    for option, paths in OPTION_FILES.items():
        for relative in paths:
            path = project / relative.replace("{{ cookiecutter.package_name }}", package)
            assert path.exists() == (answers[option] == "yes"), relative


def test_opentelemetry_is_imported_only_when_asked_for(baked: tuple[str, Path]) -> None:
    """opentelemetry=no: no module of the bake imports it and no dependency names it."""
    name, project = baked
    importers = sorted(
        str(path.relative_to(project))
        for path in project.rglob("*.py")
        if OTEL_IMPORT.search(path.read_text())
    )
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    named = [d for d in dependencies["dependencies"] if d.startswith("opentelemetry")]
    if answers_for(name)["opentelemetry"] == "yes":
        package = project.name.replace("-", "_")
        assert f"src/{package}/telemetry.py" in importers
        assert named
    else:
        assert importers == []
        assert named == []


def test_metadata_follows_the_answers(baked: tuple[str, Path]) -> None:
    name, project = baked
    answers = answers_for(name)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={answers['python_version']}"
    dependencies = " ".join(pyproject["project"]["dependencies"])
    assert (
        answers["http_client"] + ("[http2]" if answers["http2"] == "yes" else ">=") in dependencies
    )
    if answers["http_client"] == "httpx":
        assert "httpx[http2]>=0.28,<1" in dependencies or "httpx>=0.28,<1" in dependencies
        assert "sniffio" in dependencies
    library_imports = [
        path
        for path in (project / "src").rglob("*.py")
        if re.search(rf"^\s*(import|from) {answers['http_client']}\b", path.read_text(), re.M)
    ]
    assert [p.name for p in library_imports] == ["httplib.py"]


def test_ruff_passes(baked: tuple[str, Path]) -> None:
    _, project = baked
    run([str(BIN / "ruff"), "check", "."], project)
    run([str(BIN / "ruff"), "format", "--check", "."], project)


def test_mypy_strict_passes(
    baked: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, project = baked
    cache = tmp_path_factory.getbasetemp() / "mypy-cache"  # third-party stubs checked once
    run([str(BIN / "mypy"), "--cache-dir", str(cache)], project)


def test_generated_test_suite_passes(baked: tuple[str, Path]) -> None:
    name, project = baked
    selection = [] if name in FULL_SUITE else ["-m", "not slow"]
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection],
        project,
        timeout=900,
    )
    assert re.search(r"\d+ passed", result.stdout), result.stdout[-2000:]
