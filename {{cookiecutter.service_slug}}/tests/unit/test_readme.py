"""The README's configuration table documents every setting the service reads, with the
default the settings model really has (the model is the only place a default is written)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from {{ cookiecutter.package_name }}.downstream.config import DownstreamSettings
from {{ cookiecutter.package_name }}.settings import ENV_PREFIX, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


# A table row: | `VARIABLE` (or ...) | `default` | why |
ROW = re.compile(r"^\| `(?P<name>[A-Z0-9_<>]+)`[^|]*\| `(?P<default>[^`]*)` \|", re.MULTILINE)


def defaults(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any]]:
    """(variable, default) for every field, nested groups flattened as the environment is."""
    for name, field in model.model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            yield from defaults(nested, f"{prefix}{name.upper()}__")
        elif name != "downstreams":
            yield f"{prefix}{name.upper()}", field.get_default(call_default_factory=True)


def shown(value: Any) -> str:
    """A default as the README writes it."""
    if isinstance(value, frozenset):
        return "[" + ",".join(str(v) for v in sorted(value)) + "]"
    if value == "":
        return '""'
    return str(value)


def model_defaults() -> dict[str, Any]:
    return dict(
        [
            *defaults(Settings, ENV_PREFIX),
            *defaults(DownstreamSettings, f"{ENV_PREFIX}DOWNSTREAMS__<NAME>__"),
        ]
    )


def test_every_setting_is_in_the_readme_table() -> None:
    text = README.read_text()
    missing = [name for name in model_defaults() if f"`{name}" not in text]
    assert missing == []


def test_every_documented_default_is_the_models() -> None:
    documented = {m["name"]: m["default"] for m in ROW.finditer(README.read_text())}
    real = model_defaults()
    assert len(documented) > 40  # the table parsed; a format change must not pass silently
    wrong = {
        name: (text, shown(real[name]))
        for name, text in documented.items()
        if name in real and text != shown(real[name])
    }
    assert wrong == {}  # README says, model has
