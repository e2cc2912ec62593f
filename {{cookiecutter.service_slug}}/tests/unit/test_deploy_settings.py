"""The Kubernetes manifests start the service: ``deploy/k8s/base/downstreams.env`` configures
every declared downstream, as start-up checks it in production."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.downstreams import declared
from {{ cookiecutter.package_name }}.settings import (
    ENV_PREFIX,
    SettingsError,
    load_settings,
    resolve_downstreams,
)

DOWNSTREAMS_ENV = (
    Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "downstreams.env"
)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines, as kustomize's configMapGenerator reads them."""
    lines = (line.strip() for line in path.read_text().splitlines())
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_the_manifests_configure_every_declared_downstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(f"{ENV_PREFIX}ENVIRONMENT", "production")  # as deployment.yaml sets it
    for key, value in read_env_file(DOWNSTREAMS_ENV).items():
        monkeypatch.setenv(key, value)
    try:
        settings = resolve_downstreams(load_settings(), declared.names())
    except SettingsError as exc:
        pytest.fail(f"{DOWNSTREAMS_ENV.name} does not start the service:\n{exc}")
    assert sorted(settings.downstreams) == sorted(declared.names())
