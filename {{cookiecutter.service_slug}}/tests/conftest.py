"""Shared fixtures: settings pointed at real local servers, and a live service."""

from __future__ import annotations

import os

import pytest

from {{ cookiecutter.package_name }}.settings import ENV_PREFIX


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests see only the settings they set: no stray variables, no developer's .env file."""
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) or name == "LOG_FORMAT":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
