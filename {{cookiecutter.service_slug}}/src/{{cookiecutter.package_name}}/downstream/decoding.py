"""A downstream's JSON answer, read as a validated pydantic model, or a 502 saying what was wrong.

A body that is not JSON, is labelled as something else, or does not fit the model is the
downstream's fault, not a bug here: ``DownstreamBadBody`` (502), counted against the downstream
by the breaker. Its message names the downstream, the model and where the body went wrong,
never the body's content, which may hold anything.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import DownstreamBadBody, DownstreamNotFound, DownstreamRejected
from .httplib import httpx

# A TypeVar, not PEP 695's syntax: a bake may target Python 3.11.
ModelT = TypeVar("ModelT", bound=BaseModel)


def is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def json_body(name: str, response: httpx.Response) -> bytes:
    """The body of a 2xx JSON answer; a 404 is ``DownstreamNotFound``, any other 4xx rejected."""
    status = response.status_code
    if status == 404:
        raise DownstreamNotFound(name, f"{name} has no such resource (404)")
    if status >= 300:
        raise DownstreamRejected(name, f"{name} answered {status}")
    content_type = response.headers.get("content-type", "")
    if not is_json(content_type):
        shown = content_type.partition(";")[0].strip() or "no content type"
        raise DownstreamBadBody(name, f"{name} answered {shown}, not JSON")
    return response.content


def not_the_model(name: str, model: type[BaseModel], exc: ValidationError) -> DownstreamBadBody:
    return DownstreamBadBody(name, f"{name} sent {where(exc, model)}")


def where(exc: ValidationError, model: type[BaseModel]) -> str:
    """The first problem's place and kind, e.g. "a body that is not a valid Item (2 errors;
    price: float_parsing)": never the value itself."""
    errors = exc.errors(include_input=False, include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return "a body that is not valid JSON"
    place = ".".join(str(part) for part in first["loc"]) or "the body"
    count = f"{len(errors)} error{'s' if len(errors) > 1 else ''}"
    return f"a body that is not a valid {model.__name__} ({count}; {place}: {first['type']})"
