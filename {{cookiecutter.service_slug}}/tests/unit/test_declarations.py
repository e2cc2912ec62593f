"""Declared downstreams: names are checked, and a route asking for an undeclared one fails early."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.downstream.client import Downstream
from {{ cookiecutter.package_name }}.downstream.declarations import (
    Declarations,
    UndeclaredDownstreamError,
    check_routes,
)
from {{ cookiecutter.package_name }}.downstreams import declared
from {{ cookiecutter.package_name }}.settings import load_settings

elsewhere = Declarations()
Undeclared = Annotated[Downstream, elsewhere.add("undeclared")]


def stock_router() -> APIRouter:
    router = APIRouter()

    @router.get("/stock/{sku}")
    async def get_stock(sku: str, undeclared: Undeclared) -> dict[str, str]:
        return {"sku": sku}

    return router


@pytest.mark.parametrize("nested", [False, True])
def test_a_route_asking_for_an_undeclared_downstream_is_named(nested: bool) -> None:
    """What ``create_app`` runs on every route module's router before including it."""
    routes = stock_router().routes
    if nested:  # a router including another, inside an app
        app = FastAPI()
        app.include_router(stock_router())
        routes = app.routes
    with pytest.raises(UndeclaredDownstreamError) as caught:
        check_routes(routes, declared.names())
    assert str(caught.value) == (
        "GET /stock/{sku} asks for downstream 'undeclared': not declared "
        f"(declared: {', '.join(sorted(declared.names()))}); declare it in downstreams.py"
    )


def test_the_service_s_own_routes_ask_only_for_declared_downstreams() -> None:
    app = create_app(load_settings(environment="development"))
    check_routes(app.routes, declared.names())  # create_app ran it too; this states it
    assert set(app.state.settings.downstreams) == set(declared.names())


@pytest.mark.parametrize("name", ["Inventory", "2nd", "in-ventory", "", "class"])
def test_names_must_fit_an_environment_variable(name: str) -> None:
    with pytest.raises(ValueError, match="must be lower-case"):
        Declarations().add(name)


def test_a_name_is_declared_once() -> None:
    twice = Declarations()
    twice.add("inventory")
    with pytest.raises(ValueError, match="declared twice"):
        twice.add("inventory")
