"""Keep credentials out of every log line: a structlog processor and the helpers behind it.

Header values of ``Authorization``-like headers and query parameters named like a credential are
replaced wherever they appear in an event: as mappings, as header lists, or inside URL strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

REDACTED = "[REDACTED]"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-amz-security-token",
    }
)
SECRET_NAME = re.compile(r"token|key|secret|passw|signature|auth|credential|session", re.I)
QUERY_SECRET = re.compile(
    r"(?P<name>[^?&=\s\"']*(?:token|key|secret|passw|signature|auth|credential)[^?&=\s\"']*)="
    r"(?P<value>[^&\s\"'#]*)",
    re.I,
)
URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_HEADERS or bool(SECRET_NAME.search(lowered))


def redact_text(text: str) -> str:
    """Mask credential query parameters and URL user-info inside free text."""
    if "=" in text:
        text = QUERY_SECRET.sub(lambda m: f"{m.group('name')}={REDACTED}", text)
    if "@" in text:
        text = URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    return text


def redact_value(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and is_secret_name(k) else redact_value(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if all(isinstance(item, tuple) and len(item) == 2 for item in value):  # header lists
            return [
                (k, REDACTED if is_secret_name(_as_text(k)) else redact_value(v, depth + 1))
                for k, v in value
            ]
        return [redact_value(item, depth + 1) for item in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("latin-1"))
    return value


def _as_text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every key and value of the event passes through ``redact_value``."""
    for key, value in list(event_dict.items()):
        if key != "event" and is_secret_name(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str | Mapping | list | tuple | bytes):
            event_dict[key] = redact_value(value)
    return event_dict
