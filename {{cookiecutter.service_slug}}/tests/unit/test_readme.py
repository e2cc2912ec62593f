"""The README's configuration table documents every setting the service reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from {{ cookiecutter.package_name }}.downstream.config import DownstreamSettings
from {{ cookiecutter.package_name }}.settings import ENV_PREFIX, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def variables(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            yield from variables(nested, f"{prefix}{name.upper()}__")
        elif name != "downstreams":
            yield f"{prefix}{name.upper()}"


def test_every_setting_is_in_the_readme_table() -> None:
    text = README.read_text()
    names = [
        *variables(Settings, ENV_PREFIX),
        *variables(DownstreamSettings, f"{ENV_PREFIX}DOWNSTREAMS__<NAME>__"),
    ]
    missing = [name for name in names if f"`{name}" not in text]
    assert missing == []
