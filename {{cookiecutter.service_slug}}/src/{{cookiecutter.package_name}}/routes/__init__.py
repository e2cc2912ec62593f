"""HTTP routes, one module per concern: add a module with a ``router`` and it is served.

``health``, ``debug`` and ``metrics`` are the service's own (the last two can be switched off);
every other module here is yours and is included by ``create_app`` in name order.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter

BUILT_IN = frozenset({"health", "debug", "metrics"})


def service_routers() -> list[APIRouter]:
    """The ``router`` of every route module that is not built in, in name order."""
    routers = []
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name in BUILT_IN:
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        router = getattr(module, "router", None)
        if not isinstance(router, APIRouter):
            raise TypeError(f"{module.__name__} has no APIRouter named 'router'")
        routers.append(router)
    return routers
