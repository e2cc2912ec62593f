"""Service settings, read once at start-up from the environment (and an optional ``.env``).

Every value is validated before the service binds a port: a bad one stops start-up with a message
that names the environment variable (see ``load_settings``), never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from .downstream.config import DownstreamSettings, ObservabilitySettings

ENV_PREFIX = "{{ cookiecutter.package_name | upper }}_"

# Where every downstream points in development (``make run``): the bundled fault server, one
# base path per downstream. Outside development there is no default: BASE_URL is required.
DEVELOPMENT_ORIGIN = "http://127.0.0.1:8001"


class Settings(BaseSettings):
    """Everything configurable, with production-safe defaults."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        frozen=True,
    )

    environment: Literal["development", "production"] = "production"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        validation_alias=AliasChoices(f"{ENV_PREFIX}LOG_FORMAT", "LOG_FORMAT", "log_format"),
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True
    shutdown_grace_seconds: int = Field(default=10, ge=1, le=300)
    deadline_header: str = Field(default="x-request-deadline-ms", pattern=r"^[a-z0-9-]+$")
    default_deadline_seconds: float = Field(default=10.0, gt=0, le=300)
    debug_endpoints: bool = True
    metrics_endpoint: bool = True
    observability: ObservabilitySettings = ObservabilitySettings()
    downstreams: dict[str, DownstreamSettings] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def development_base_urls(cls, data: Any) -> Any:
        """In development, a downstream configured without BASE_URL points at loopback."""
        if not isinstance(data, dict) or data.get("environment") != "development":
            return data
        given = data.get("downstreams")
        if not isinstance(given, dict):
            return data
        filled = {
            name: {"base_url": development_url(name), **fields}
            if isinstance(fields, dict)
            else fields
            for name, fields in given.items()
        }
        return {**data, "downstreams": filled}

    @model_validator(mode="after")
    def refuse_unsafe_outside_development(self) -> Settings:
        if self.environment == "development":
            return self
        found = [
            f"{env_var_name(('downstreams', name, field))}: {reason}"
            for name, downstream in self.downstreams.items()
            for field, reason in downstream.production_problems()
        ]
        if found:
            raise ValueError("; ".join(found))
        return self


class SettingsError(Exception):
    """Start-up configuration is invalid; ``str()`` is one line per problem."""


def development_url(name: str) -> str:
    return f"{DEVELOPMENT_ORIGIN}/{name}"


def resolve_downstreams(settings: Settings, declared: Sequence[str]) -> Settings:
    """Settings for exactly the declared downstreams, or ``SettingsError`` naming each variable.

    A declared downstream nobody configured gets a loopback URL in development and stops
    start-up anywhere else; a configured name nobody declared is a typo or a leftover.
    """
    problems = [
        f"{env_var_name(('downstreams', name, 'base_url'))}: required outside "
        "ENVIRONMENT=development (there is no default)"
        for name in declared
        if name not in settings.downstreams and settings.environment != "development"
    ]
    problems += [
        f"{env_var_name(('downstreams', name))}__...: {name!r} is not a declared downstream "
        f"(declared: {', '.join(declared) or 'none'}); declare it in downstreams.py or "
        "remove the variables"
        for name in settings.downstreams
        if name not in declared
    ]
    if problems:
        raise SettingsError("\n".join(problems))
    opened = {
        name: settings.downstreams.get(name) or DownstreamSettings(base_url=development_url(name))
        for name in declared
    }
    return settings.model_copy(update={"downstreams": opened})


def env_var_name(location: tuple[int | str, ...]) -> str:
    """``("downstreams", "catalog", "port")`` -> ``<PREFIX>DOWNSTREAMS__CATALOG__PORT``."""
    return ENV_PREFIX + "__".join(str(part).upper() for part in location)


SENSITIVE_LOCATIONS = frozenset({"headers", "secret", "password", "token"})


def describe(error: ErrorDetails) -> str:
    """One line for one pydantic error, naming the variable and never echoing a secret."""
    location = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = ""
    if (
        isinstance(value, str | int | float)
        and not SENSITIVE_LOCATIONS.intersection(str(p).lower() for p in location)
        and len(str(value)) <= 60
        and error["type"] != "missing"
    ):
        shown = f" (got {value!r})"
    if not location:  # a check across fields: its message names the variables itself
        return message
    return f"{env_var_name(location)}: {message}{shown}"


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings, or raise ``SettingsError`` naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("\n".join(describe(e) for e in exc.errors())) from None
