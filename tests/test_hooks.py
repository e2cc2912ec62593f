"""Bad answers are refused by hooks/pre_gen_project.py before any file is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException, OutputDirExistsException
from cookiecutter.main import cookiecutter

from tests.conftest import TEMPLATE

HOSTILE_ANSWERS = [
    pytest.param({"service_slug": "Bad Slug"}, "service_slug", id="slug-with-space"),
    pytest.param({"service_slug": "x'; import os; os.system('id') #"}, "service_slug", id="quote"),
    pytest.param({"service_slug": "a\\b"}, "service_slug", id="backslash"),
    pytest.param({"service_slug": "line\nbreak"}, "service_slug", id="newline"),
    pytest.param({"service_slug": "../escape"}, "service_slug", id="parent-dir"),
    pytest.param({"service_slug": "a" * 65}, "service_slug", id="very-long"),
    pytest.param({"service_slug": "-leading-hyphen"}, "service_slug", id="leading-hyphen"),
    pytest.param({"service_slug": "double--hyphen"}, "service_slug", id="double-hyphen"),
    pytest.param({"project_name": "Café Service"}, "service_slug", id="unicode-derived-slug"),
    pytest.param({"package_name": "class"}, "package_name", id="keyword"),
    pytest.param({"package_name": "match"}, "package_name", id="soft-keyword"),
    pytest.param({"package_name": "json"}, "package_name", id="stdlib"),
    pytest.param({"package_name": "httpx"}, "package_name", id="dependency"),
    pytest.param({"package_name": "test"}, "package_name", id="test-shadow"),
    pytest.param({"package_name": "1abc"}, "package_name", id="not-identifier"),
    pytest.param({"package_name": "пакет"}, "package_name", id="unicode-identifier"),
    pytest.param({"package_name": "Pool_Service"}, "package_name", id="upper-case"),
    pytest.param({"author_email": "not-an-email"}, "author_email", id="bad-email"),
    pytest.param({"author_email": 'a"b@example.com'}, "author_email", id="email-quote"),
    pytest.param({"project_name": 'Pool """ Service'}, "project_name", id="triple-quote"),
    pytest.param({"description": "two\nlines"}, "description", id="multiline-description"),
    pytest.param({"description": "unclosed `backtick"}, "description", id="backtick"),
    pytest.param({"author_name": "   "}, "author_name", id="blank-author"),
    pytest.param({"include_docker": "no", "include_k8s": "yes"}, "include_k8s", id="k8s-no-image"),
]


@pytest.mark.parametrize(("answers", "named"), HOSTILE_ANSWERS)
def test_hostile_answer_is_refused_and_nothing_is_left(
    answers: dict[str, str], named: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(output))
    assert list(output.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # '../x' created nothing beside
    stderr = capfd.readouterr().err
    assert f"ERROR: {named}=" in stderr, stderr


def test_a_slug_with_a_slash_leaves_no_files(tmp_path: Path) -> None:
    """cookiecutter makes the project directory before pre_gen_project runs and removes only the
    leaf on failure, so 'a/b' leaves an empty 'a/': no file is ever written."""
    with pytest.raises(FailedHookException):
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context={"service_slug": "a/b"},
            output_dir=str(tmp_path),
        )
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_cli_refuses_bad_slug_and_writes_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            str(TEMPLATE),
            "service_slug=Bad Slug",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "ERROR: service_slug='Bad Slug': is not a valid slug" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("answers", [[], ["service_slug=Bad Slug"]], ids=["baked", "refused"])
def test_a_bake_leaves_nothing_in_the_temp_directory(answers: list[str], tmp_path: Path) -> None:
    """cookiecutter runs each hook from a rendered copy in the temp directory and never removes
    it; the hooks remove their own copy, whether the answers are refused or baked."""
    temp = tmp_path / "temp"
    temp.mkdir()
    subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), *answers],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert (tmp_path / "pool-service").exists() == (not answers)  # the hooks ran either way
    assert list(temp.iterdir()) == []


def test_unicode_text_answers_are_data_not_code(tmp_path: Path) -> None:
    """Free text may be any printable unicode; it lands in files as data, escaped."""
    answers = {
        "project_name": "Zürich Pool",
        "service_slug": "zurich-pool",
        "description": "Räte <b>&</b> 'quoted' (Ünïcode) 🚀",
    }
    cookiecutter(str(TEMPLATE), no_input=True, extra_context=answers, output_dir=str(tmp_path))
    project = tmp_path / "zurich-pool"
    import tomllib

    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert metadata["description"] == answers["description"]
    replay = json.loads((project / ".cookiecutter.json").read_text())
    assert replay["description"] == answers["description"]
    compiled = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(project / "src")], check=False
    )
    assert compiled.returncode == 0


def load_hook(answers: dict[str, str]) -> dict[str, Any]:
    """The pre-gen hook's namespace, rendered with ``answers`` as cookiecutter would."""
    source = (TEMPLATE / "hooks" / "pre_gen_project.py").read_text()
    rendered = source.replace("{{ cookiecutter | tojson }}", json.dumps(answers))
    namespace: dict[str, Any] = {"__name__": "pre_gen_project"}
    exec(compile(rendered, "pre_gen_project.py", "exec"), namespace)
    return namespace


DEFAULT_ANSWERS = json.loads((TEMPLATE / "cookiecutter.json").read_text())


def valid_answers(**changes: str) -> dict[str, str]:
    answers = {
        "project_name": "Pool Service",
        "service_slug": "pool-service",
        "package_name": "pool_service",
        "description": "d",
        "author_name": "a",
        "author_email": "a@example.com",
        "python_version": "3.11",
        "http_client": "httpx",
        "http2": "yes",
        "include_docker": "yes",
        "include_k8s": "yes",
        "opentelemetry": "yes",
    }
    assert set(answers) <= set(DEFAULT_ANSWERS)
    return {**answers, **changes}


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"python_version": "2.7"}, "python_version"),
        ({"http_client": "requests"}, "http_client"),
        ({"http2": "maybe"}, "http2"),
        ({"opentelemetry": "maybe"}, "opentelemetry"),
        ({"service_slug": ""}, "service_slug"),
    ],
)
def test_hook_refuses_what_cookiecutter_checks_first(changes: dict[str, str], named: str) -> None:
    """A replayed or hand-edited answer file can reach the hook with values the prompt forbids."""
    hook = load_hook(valid_answers(**changes))
    assert [answer.split("=")[0] for answer, _ in hook["problems"](hook["ANSWERS"])] == [named]


def test_hook_accepts_the_defaults() -> None:
    hook = load_hook(valid_answers())
    assert hook["problems"](hook["ANSWERS"]) == []


@pytest.mark.parametrize(
    ("changes", "error"),
    [({"service_slug": ""}, OutputDirExistsException), ({"http_client": "requests"}, ValueError)],
)
def test_cookiecutter_refuses_before_writing(
    changes: dict[str, str], error: type[Exception], tmp_path: Path
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    with pytest.raises(error):
        cookiecutter(str(TEMPLATE), no_input=True, extra_context=changes, output_dir=str(output))
    assert list(output.iterdir()) == []
