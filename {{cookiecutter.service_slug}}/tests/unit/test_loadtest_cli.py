"""``python -m loadtest`` refuses a target that is not this machine, before sending anything,
and hands the service its settings."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.downstreams import declared
from {{ cookiecutter.package_name }}.settings import ENV_PREFIX

from loadtest.__main__ import main, parse_args, variant_settings
from loadtest.profiles import make_profile


def env_name(downstream: str) -> str:
    return f"{ENV_PREFIX}DOWNSTREAMS__{downstream.upper()}"


@pytest.mark.parametrize(
    "url", ["http://10.0.0.8:8000", "http://example.com", "http://127.0.0.1.nip.io:8000", "x"]
)
def test_a_remote_target_is_refused_by_name(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--target", url])
    assert exit_info.value.code == 2
    assert "--target must be on this machine" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://[::1]:8000", "http://localhost"])
def test_a_loopback_target_is_accepted(url: str) -> None:
    args, _ = parse_args(["--target", url])
    assert args.target == url


def test_engine_sets_every_downstreams_engine(capsys: pytest.CaptureFixture[str]) -> None:
    """``--engine`` reaches the service the way every other setting does: its environment."""
    assert main(["--profile", "quick", "--engine", "httpcore", "--print-service-env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    engines = {line for line in lines if "__ENGINE=" in line}
    assert engines == {f"{env_name(name)}__ENGINE=httpcore" for name in declared.names()}


def test_a_variant_process_gets_its_settings_and_base_paths_of_its_own() -> None:
    """The tail phase's process hedges, and the fault server tells its requests apart."""
    variant = make_profile("quick").variants[0]
    env = variant_settings("{{ cookiecutter.package_name }}", variant, "http://127.0.0.1:9")
    for name in declared.names():
        assert env[f"{env_name(name)}__BASE_URL"] == f"http://127.0.0.1:9/hedged-{name}"
        assert env[f"{env_name(name)}__HEDGE__ENABLED"] == "true"
    assert len({v.route("catalog") for v in make_profile("quick").variants}) == 2


@pytest.mark.parametrize(
    "where", [["--target", "http://127.0.0.1:8000"], ["--service-command", "x"]]
)
def test_a_service_started_elsewhere_runs_no_variant_phase(where: list[str]) -> None:
    """The runner cannot start a second process like one it did not start."""
    _, profile = parse_args(["--profile", "quick", *where])
    assert not profile.variants
    _, own = parse_args(["--profile", "quick"])
    assert own.variants
