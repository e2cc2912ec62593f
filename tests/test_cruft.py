"""Generated projects stay current with the template through cruft, offline.

The test plays both sides with local git only: it commits a copy of the template, creates a
project from that commit with ``cruft create``, changes the template and commits again, then
shows ``cruft check`` reporting the project out of date and ``cruft update`` applying the change
cleanly: no conflict, no ``.rej`` file, nothing touched but the change and the template state.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.conftest import BIN, TEMPLATE, run

NOT_PART_OF_THE_TEMPLATE = shutil.ignore_patterns(
    ".git", ".venv", "build", "__pycache__", ".ruff_cache", ".mypy_cache", ".pytest_cache"
)
# git with a fixed identity and none of the machine's configuration (signing, hooks, templates).
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Template Test",
    "GIT_AUTHOR_EMAIL": "template-test@example.com",
    "GIT_COMMITTER_NAME": "Template Test",
    "GIT_COMMITTER_EMAIL": "template-test@example.com",
}
ADDED_LINE = "# kept current by cruft: {{ cookiecutter.project_name }}"
RENDERED_LINE = "# kept current by cruft: Pool Service"
# Files that record which template commit the project follows: an update rewrites them too.
TEMPLATE_STATE = {".cruft.json", ".cookiecutter.json"}


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo, env=GIT_ENV).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-verify", "--message", message)
    return git(repo, "rev-parse", "HEAD")


def cruft(cwd: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """cruft, whose exit status is the answer (``check`` fails when out of date).

    ``home`` is an empty folder: no user's cookiecutter config or replay applies.
    """
    return subprocess.run(
        [str(BIN / "cruft"), *args],
        cwd=cwd,
        env={**GIT_ENV, "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cruft_reports_and_applies_a_template_change(tmp_path: Path) -> None:
    template, home = tmp_path / "template", tmp_path / "home"
    home.mkdir()
    shutil.copytree(TEMPLATE, template, ignore=NOT_PART_OF_THE_TEMPLATE)
    git(template, "init", "--quiet", "--initial-branch=main")
    first = commit_all(template, "template, first version")

    out = tmp_path / "out"
    created = cruft(
        tmp_path,
        "create",
        str(template),
        "--no-input",
        "--output-dir",
        str(out),
        "--checkout",
        first,
        home=home,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    project = out / "pool-service"
    assert json.loads((project / ".cruft.json").read_text())["commit"] == first
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "generated")
    assert cruft(project, "check", home=home).returncode == 0

    gitignore = template / "{{cookiecutter.service_slug}}" / ".gitignore"
    gitignore.write_text(gitignore.read_text() + ADDED_LINE + "\n")
    second = commit_all(template, "template, second version")

    check = cruft(project, "check", home=home)
    assert check.returncode != 0
    assert "out of date" in check.stdout + check.stderr

    update = cruft(project, "update", "--skip-apply-ask", home=home)
    assert update.returncode == 0, update.stdout + update.stderr
    assert (project / ".gitignore").read_text().endswith(RENDERED_LINE + "\n")
    assert json.loads((project / ".cruft.json").read_text())["commit"] == second
    changed = {line[3:] for line in git(project, "status", "--porcelain").splitlines()}
    assert ".gitignore" in changed
    assert changed <= {".gitignore", *TEMPLATE_STATE}
    assert list(project.rglob("*.rej")) == []
    assert cruft(project, "check", home=home).returncode == 0
