"""Declared downstreams: the names a service calls, each with the FastAPI dependency for it.

``downstreams.py`` declares each downstream once; everything else (its settings, client, debug
view, metrics, load test) follows from the name. ``create_app`` checks every route's
downstreams against what was opened, so a route asking for a name nobody declared fails when
the app is built, naming it, never as a 500 on its first request.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from .client import Downstream

# One environment-variable segment: POOL_SERVICE_DOWNSTREAMS__<NAME>__BASE_URL.
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class DownstreamDependency:
    """The dependency a route declares to get one downstream opened by the lifespan.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    hop per request (7-20 % of the service's samples under load, measured with py-spy).
    """

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, request: Request) -> Downstream:
        found: Downstream = request.state.downstreams[self.name]
        return found


class Declarations:
    """The downstreams one service calls, in declaration order."""

    def __init__(self) -> None:
        self._names: list[str] = []

    def add(self, name: str) -> Any:
        """Declare ``name``; returns the ``Depends`` marker for ``Annotated[Downstream, ...]``."""
        if not NAME.match(name) or keyword.iskeyword(name):
            raise ValueError(
                f"downstream name {name!r} must be lower-case letters, digits and '_', "
                "starting with a letter: it becomes part of environment variable names"
            )
        if name in self._names:
            raise ValueError(f"downstream {name!r} is declared twice")
        self._names.append(name)
        return Depends(DownstreamDependency(name))

    def names(self) -> tuple[str, ...]:
        return tuple(self._names)


class UndeclaredDownstreamError(LookupError):
    """A route asks for a downstream the service does not open."""


def check_routes(routes: Iterable[BaseRoute], opened: Iterable[str]) -> None:
    """Raise naming every route that asks for a downstream not in ``opened``."""
    available = set(opened)
    missing = [
        f"{','.join(sorted(route.methods or ()))} {route.path} asks for downstream {name!r}"
        for route in api_routes(routes)
        for name in downstreams_of(route.dependant)
        if name not in available
    ]
    if missing:
        raise UndeclaredDownstreamError(
            "; ".join(missing)
            + f": not declared (declared: {', '.join(sorted(available)) or 'none'}); "
            "declare it in downstreams.py"
        )


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI >= 0.13x nests routers
        if included is not None:
            yield from api_routes(included.routes)


def downstreams_of(dependant: Dependant) -> Iterator[str]:
    for sub in dependant.dependencies:
        if isinstance(sub.call, DownstreamDependency):
            yield sub.call.name
        yield from downstreams_of(sub)
