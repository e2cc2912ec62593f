"""Credentials never reach a log line, whatever shape they arrive in."""

from __future__ import annotations

from typing import Any

import pytest

from {{ cookiecutter.package_name }}.redaction import REDACTED, redact_event

SECRET_HEADERS = [
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-API-Key",
    "Api-Key",
    "X-Auth-Token",
]
SECRET_PARAMETERS = [
    "token",
    "access_token",
    "api_key",
    "apikey",
    "client_secret",
    "password",
    "passwd",
    "signature",
    "X-Amz-Signature",
    "sig_key",
]


def redacted(**event: Any) -> dict[str, Any]:
    return dict(redact_event(None, "info", {"event": "test", **event}))


@pytest.mark.parametrize("header", SECRET_HEADERS)
def test_secret_headers_are_masked_in_mappings_and_lists(header: str) -> None:
    event = redacted(
        headers={header: "s3cr3t", "Accept": "application/json"},
        raw_headers=[(header.lower().encode(), b"s3cr3t"), (b"accept", b"*/*")],
    )
    assert event["headers"] == {header: REDACTED, "Accept": "application/json"}
    assert event["raw_headers"] == [(header.lower().encode(), REDACTED), (b"accept", "*/*")]


@pytest.mark.parametrize("name", SECRET_PARAMETERS)
def test_secret_query_parameters_are_masked_in_any_text(name: str) -> None:
    url = f"https://api.example.com/items?page=2&{name}=s3cr3t&sort=asc"
    event = redacted(url=url, event_text=f'HTTP Request: GET {url} "HTTP/1.1 200 OK"')
    for value in (event["url"], event["event_text"]):
        assert "s3cr3t" not in value
        assert f"{name}={REDACTED}" in value
        assert "page=2" in value
        assert "sort=asc" in value


def test_user_info_in_urls_is_masked() -> None:
    event = redacted(target="connecting to https://admin:hunter2@db.internal:5432/x")
    assert "hunter2" not in event["target"]
    assert f"https://{REDACTED}@db.internal:5432/x" in event["target"]


def test_secret_named_keys_are_masked_and_harmless_ones_kept() -> None:
    event = redacted(
        password="p", api_token="t", downstream="catalog", status=200, nested={"secret": "s"}
    )
    assert event["password"] == REDACTED
    assert event["api_token"] == REDACTED
    assert event["nested"] == {"secret": REDACTED}
    assert event["downstream"] == "catalog"
    assert event["status"] == 200
