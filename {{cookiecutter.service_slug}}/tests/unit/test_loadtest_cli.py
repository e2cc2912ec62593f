"""``python -m loadtest`` refuses a target that is not this machine, before sending anything."""

from __future__ import annotations

import pytest

from loadtest.__main__ import parse_args


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
