"""Start-up validation: every bad value is refused with the environment variable's name."""

from __future__ import annotations

import pytest

from {{ cookiecutter.package_name }}.downstreams import declared
from {{ cookiecutter.package_name }}.settings import (
    ENV_PREFIX,
    Settings,
    SettingsError,
    load_settings,
    resolve_downstreams,
)

CATALOG = f"{ENV_PREFIX}DOWNSTREAMS__CATALOG__"
PRICING = f"{ENV_PREFIX}DOWNSTREAMS__PRICING__"


def load() -> Settings:
    """What start-up does: read the environment, then settle the declared downstreams."""
    return resolve_downstreams(load_settings(), declared.names())


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load()
    return str(caught.value)


def base_url_variable(name: str) -> str:
    return f"{ENV_PREFIX}DOWNSTREAMS__{name.upper()}__BASE_URL"


@pytest.fixture(autouse=True)
def base_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production needs every declared downstream's BASE_URL; tests override what they test."""
    for name in declared.names():
        monkeypatch.setenv(base_url_variable(name), f"http://{name}.internal")


def test_defaults_are_valid_and_safe() -> None:
    settings = load()
    assert settings.environment == "production"
    assert settings.port == 8000
    assert settings.host == "127.0.0.1"
    assert set(settings.downstreams) == set(declared.names())
    catalog = settings.downstreams["catalog"]
    assert catalog.timeouts.pool < catalog.timeouts.read
    assert catalog.tls_verify is True
    assert catalog.bulkhead.max_concurrency <= catalog.limits.max_connections


def test_production_has_no_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in declared.names():
        monkeypatch.delenv(base_url_variable(name))
    assert refusal(monkeypatch).splitlines() == [
        f"{base_url_variable(name)}: required outside ENVIRONMENT=development (there is no default)"
        for name in declared.names()
    ]
    monkeypatch.setenv(f"{PRICING}TIMEOUTS__READ", "2")  # configured, but still no URL
    assert f"{PRICING}BASE_URL: Field required" in refusal(monkeypatch)


def test_development_points_every_downstream_at_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}ENVIRONMENT", "development")
    for name in declared.names():
        monkeypatch.delenv(base_url_variable(name))
    monkeypatch.setenv(f"{PRICING}TIMEOUTS__READ", "2")
    downstreams = load().downstreams
    assert downstreams["catalog"].base_url == "http://127.0.0.1:8001/catalog"
    assert downstreams["pricing"].base_url == "http://127.0.0.1:8001/pricing"
    assert downstreams["pricing"].timeouts.read == 2


def test_an_undeclared_downstream_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, **{f"{ENV_PREFIX}DOWNSTREAMS__CATALOGUE__BASE_URL": "http://x"})
    assert message == (
        f"{ENV_PREFIX}DOWNSTREAMS__CATALOGUE__...: 'catalogue' is not a declared downstream "
        f"(declared: {', '.join(declared.names())}); declare it in downstreams.py or remove "
        "the variables"
    )


def test_nested_variables_layer_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{CATALOG}TIMEOUTS__POOL", "0.25")
    catalog = load().downstreams["catalog"]
    assert catalog.timeouts.pool == 0.25
    assert catalog.timeouts.read == 3.0
    assert catalog.base_url == "http://catalog.internal"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (f"{ENV_PREFIX}PORT", "abc", f"{ENV_PREFIX}PORT: Input should be a valid integer"),
        (f"{ENV_PREFIX}PORT", "70000", f"{ENV_PREFIX}PORT"),
        (f"{ENV_PREFIX}LOG_LEVEL", "loud", f"{ENV_PREFIX}LOG_LEVEL"),
        (f"{CATALOG}TIMEOUTS__POOL", "5", f"{CATALOG}TIMEOUTS: POOL (5.0s) must be below READ"),
        (f"{CATALOG}LIMITS__MAX_CONNECTIONS", "0", f"{CATALOG}LIMITS__MAX_CONNECTIONS"),
        (f"{CATALOG}LIMITS__MAX_KEEPALIVE_CONNECTIONS", "50", "must not exceed MAX_CONNECTIONS"),
        (f"{CATALOG}LIMITS__KEEPALIVE_EXPIRY", "inf", f"{CATALOG}LIMITS__KEEPALIVE_EXPIRY"),
        (f"{CATALOG}BASE_URL", "ftp://x", f"{CATALOG}BASE_URL: must be an absolute http"),
        (f"{CATALOG}BASE_URL", "/relative", f"{CATALOG}BASE_URL"),
        (f"{CATALOG}BASE_URL", "http://user:pw@h", "must not carry credentials"),
        (f"{CATALOG}BASE_URL", "http://h/?q=1", "must not carry a query"),
        (f"{CATALOG}BASE_URL", "http://h/#frag", "must not carry a query or a fragment"),
        (f"{CATALOG}BULKHEAD__MAX_CONCURRENCY", "11", "is wider than the pool can serve"),
        (f"{CATALOG}RETRY__RETRYABLE_STATUSES", "[404]", "only 429 and 5xx"),
        (f"{CATALOG}TLS_VERIFY", "false", f"{CATALOG}TLS_VERIFY: false is allowed only"),
        (f"{CATALOG}HEADERS__AUTHORIZATION", "changeme", "placeholder secret"),
        (f"{CATALOG}TIMEOUT__READ", "1", f"{CATALOG}TIMEOUT: Extra inputs are not permitted"),
        (f"{CATALOG}CA_BUNDLE", "/nonexistent.pem", f"{CATALOG}CA_BUNDLE"),
        (f"{CATALOG}HEDGE__DELAY_PERCENTILE", "0.95", f"{CATALOG}HEDGE__DELAY_PERCENTILE: 0.95"),
        (f"{CATALOG}HEDGE__BUDGET_RATIO", "0.9", f"{CATALOG}HEDGE__BUDGET_RATIO"),
    ],
)
def test_bad_values_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    assert expected in refusal(monkeypatch, **{variable: value})


def test_secret_values_are_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, **{f"{CATALOG}HEADERS__AUTHORIZATION": "changeme"})
    assert "changeme" not in message


def test_development_allows_placeholders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}ENVIRONMENT", "development")
    monkeypatch.setenv(f"{CATALOG}HEADERS__X_API_KEY", "changeme")
    monkeypatch.setenv(f"{CATALOG}TLS_VERIFY", "false")
    catalog = load().downstreams["catalog"]
    assert catalog.tls_verify is False
    assert "x-api-key" in catalog.headers


def test_http2_without_h2_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "h2" else real_find_spec(name)
    )
    message = refusal(monkeypatch, **{f"{CATALOG}HTTP2": "true"})
    assert f"{CATALOG[:-2]}: HTTP2 is on but the h2 package is not installed" in message


def test_bulkhead_may_be_wider_over_http2_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{CATALOG}BASE_URL", "https://catalog.internal")
    monkeypatch.setenv(f"{CATALOG}HTTP2", "true")
    monkeypatch.setenv(f"{CATALOG}BULKHEAD__MAX_CONCURRENCY", "50")
    assert load().downstreams["catalog"].bulkhead.max_concurrency == 50
    monkeypatch.setenv(f"{CATALOG}BULKHEAD__MAX_CONCURRENCY", "101")
    assert "100 HTTP/2 streams" in refusal(monkeypatch)
