"""Refuse bad cookiecutter answers before any file of the project is written.

Every answer is read as data through ``tojson`` (never pasted into Python source), checked, and
reported as ``ERROR: <answer>: <why and what to type instead>``. Exit status 1 makes cookiecutter
raise ``FailedHookException`` and delete the (still empty) project directory it created.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import tempfile
from pathlib import Path

ANSWERS: dict[str, object] = json.loads(r"""{{ cookiecutter | tojson }}""")

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
MAX_NAME_LENGTH = 64
MAX_TEXT_LENGTH = 200

CHOICES: dict[str, tuple[str, ...]] = {
    "python_version": ("3.11", "3.12", "3.13"),
    "http_client": ("httpx", "httpx2"),
    "http2": ("yes", "no"),
    "include_docker": ("yes", "no"),
    "include_k8s": ("yes", "no"),
    "opentelemetry": ("yes", "no"),
}

# Import names the generated service (or its tests) imports: a package with one of these names
# would shadow it. Lower-case, underscores, as Python sees them.
DEPENDENCY_NAMES = frozenset(
    {
        "anyio",
        "cookiecutter",
        "fastapi",
        "h2",
        "hpack",
        "httpcore",
        "httpcore2",
        "httptools",
        "httpx",
        "httpx2",
        "hypercorn",
        "locust",
        "opentelemetry",
        "mypy",
        "prometheus_client",
        "pydantic",
        "pydantic_settings",
        "pytest",
        "respx",
        "ruff",
        "sniffio",
        "starlette",
        "structlog",
        "tenacity",
        "test",
        "tests",
        "trustme",
        "uvicorn",
        "uvloop",
        "loadtest",
    }
)


def text_problem(value: str, limit: int) -> str | None:
    """Why a free-text answer cannot be used, or None."""
    if not value.strip():
        return "must not be empty"
    if len(value) > limit:
        return f"is {len(value)} characters long; use at most {limit}"
    if any(not ch.isprintable() for ch in value):
        return "contains a newline or control character; use one plain line"
    if any(ch in value for ch in '"\\`{}'):
        return "contains quotes, backslashes, backticks or braces; leave them out"
    return None


def slug_problem(slug: str) -> str | None:
    if len(slug) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters; choose a shorter name"
    if not SLUG_PATTERN.match(slug):
        return (
            "is not a valid slug; use lower-case ASCII letters and digits separated by single "
            "hyphens, starting with a letter (e.g. 'pool-service')"
        )
    return None


def package_problem(name: str) -> str | None:
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters; choose a shorter name"
    if not (name.isascii() and name.isidentifier() and PACKAGE_PATTERN.match(name)):
        return (
            "is not a valid import name; use lower-case ASCII letters and digits separated by "
            "single underscores, starting with a letter (e.g. 'pool_service')"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "is a Python keyword; choose another name (e.g. 'my_service')"
    if name in sys.stdlib_module_names:
        return "shadows a standard-library module; choose another name (e.g. 'my_service')"
    if name in DEPENDENCY_NAMES:
        return "shadows a dependency of the service; choose another name (e.g. 'my_service')"
    return None


def problems(answers: dict[str, object]) -> list[tuple[str, str]]:
    """Every (answer, reason) pair that must be fixed, in prompt order."""
    found: list[tuple[str, str]] = []

    def check(key: str, reason: str | None) -> None:
        if reason is not None:
            found.append((f"{key}={answers.get(key)!r}", reason))

    for key, limit in (("project_name", MAX_TEXT_LENGTH), ("description", MAX_TEXT_LENGTH)):
        check(key, text_problem(str(answers.get(key, "")), limit))
    check("author_name", text_problem(str(answers.get("author_name", "")), MAX_TEXT_LENGTH))
    check("service_slug", slug_problem(str(answers.get("service_slug", ""))))
    check("package_name", package_problem(str(answers.get("package_name", ""))))
    email = str(answers.get("author_email", ""))
    if not EMAIL_PATTERN.match(email):
        check("author_email", "is not an email address; type one like 'team@example.com'")
    for key, allowed in CHOICES.items():
        if answers.get(key) not in allowed:
            check(key, f"must be one of {', '.join(allowed)}")
    if answers.get("include_k8s") == "yes" and answers.get("include_docker") != "yes":
        check(
            "include_k8s",
            "needs a container image to deploy; answer include_docker=yes or include_k8s=no",
        )
    return found


def remove_this_copy() -> None:
    """cookiecutter runs a hook from a rendered copy in the temp directory and leaves the copy
    there (cookiecutter#886, kept upstream): without this, every bake leaves two files behind."""
    here = Path(__file__).resolve()
    if here.parent == Path(tempfile.gettempdir()).resolve():
        here.unlink(missing_ok=True)


def main() -> int:
    found = problems(ANSWERS)
    for answer, reason in found:
        print(f"ERROR: {answer}: {reason}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    remove_this_copy()
    sys.exit(main())
