"""Which ``OTEL_*`` settings turn tracing on, and which stop the service at start-up."""

from __future__ import annotations

import os

import pytest

from {{ cookiecutter.package_name }}.downstream.spans import NO_SPANS
from {{ cookiecutter.package_name }}.settings import SettingsError
from {{ cookiecutter.package_name }}.telemetry import exporter_names, resource, tracing_for

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({}, [], id="nothing-configured"),
        pytest.param(ENDPOINT, ["otlp"], id="an-endpoint-means-otlp"),
        pytest.param({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/v1/traces"}, ["otlp"]),
        pytest.param({"OTEL_TRACES_EXPORTER": "console"}, ["console"], id="console"),
        pytest.param({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, [], id="none-wins"),
        pytest.param({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, [], id="sdk-disabled"),
        pytest.param({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
    ],
)
def test_exporters_follow_the_otel_variables(environ: dict[str, str], expected: list[str]) -> None:
    assert exporter_names(environ) == expected


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER='jaeger'"),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL="),
    ],
)
def test_a_setting_this_service_cannot_honour_is_one_line_naming_it(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        exporter_names(environ)
    assert str(refused.value).startswith(named)
    assert "\n" not in str(refused.value)


def test_no_exporter_means_no_tracer(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing_for("svc", "x-request-deadline-ms") is NO_SPANS


def test_the_service_name_defaults_to_the_slug_and_yields_to_otel_service_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert resource("svc", os.environ).attributes["service.name"] == "svc"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "other")
    assert resource("svc", os.environ).attributes["service.name"] == "other"
