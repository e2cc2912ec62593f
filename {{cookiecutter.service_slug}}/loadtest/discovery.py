"""Find the service's package and the GET routes the load test can call, with their downstreams.

A route's downstreams are the ``Annotated[Downstream, ...]`` parameters it takes, read from
FastAPI's own dependency tree, so a new route module is load-tested as soon as it exists.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi.routing import APIRoute

from loadtest.naming import Route

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Tuning:
    """How much one route is called (relative weight), and the downstreams it degrades without."""

    weight: int = 2
    degrades_without: tuple[str, ...] = ()


class DiscoveryError(RuntimeError):
    """The service's package or its routes could not be found."""


def find_package(src: Path = PROJECT_ROOT / "src") -> str:
    """The one package under src/ that has a ``__main__`` and ``settings`` module."""
    packages = sorted(
        main.parent.name
        for main in src.glob("*/__main__.py")
        if (main.parent / "settings.py").exists()
    )
    if len(packages) != 1:
        raise DiscoveryError(f"found {packages} as service package(s) in {src}; use --package")
    return packages[0]


def service_routes(tuning: Mapping[str, Tuning], skipped: frozenset[str]) -> tuple[Route, ...]:
    """Every GET route of the service's route modules that calls a downstream, in path order;
    a path in ``tuning`` takes its weight and optional downstreams from there."""
    if str(PROJECT_ROOT / "src") not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT / "src"))
    package = find_package()
    routes_module = importlib.import_module(f"{package}.routes")
    declarations = importlib.import_module(f"{package}.downstream.declarations")
    found: dict[str, Route] = {}
    for router in routes_module.service_routers():
        for route in declarations.api_routes(router.routes):
            if not isinstance(route, APIRoute) or "GET" not in (route.methods or ()):
                continue
            names = tuple(dict.fromkeys(declarations.downstreams_of(route.dependant)))
            if not names or route.path in skipped:
                continue
            tuned = tuning.get(route.path, Tuning())
            optional = tuned.degrades_without
            calls = tuple(name for name in names if name not in optional)
            found[route.path] = Route(route.path, tuned.weight, calls, optional)
    unknown = sorted(set(tuning) - set(found))
    if unknown:
        raise DiscoveryError(f"loadtest/routes.py tunes {unknown}: no such GET route")
    return tuple(found[path] for path in sorted(found))
