"""Each public module's `__all__` is its public API, exactly (as httpx tests its own).

For every module of dockside, cloud, edge_agent and hardware_mocks whose name has no leading
underscore: every name in `__all__` exists, and every public function or class the module
defines is in `__all__`. A module says a public name is not for importing in one of two ways:
it names it with a leading underscore, or its own `APIRouter` or `FastAPI` app reaches it: a
route handler, a dependency of one, or a request model of one (the router is what is exported;
what it reaches is used through it, never imported).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any, get_args

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from dockside import errors

PACKAGES = ("dockside", "cloud", "edge_agent", "hardware_mocks")
# Modules that are not imported by name, so have no public API to check, and why.
NOT_IMPORTED = {
    "dockside.v1": "stubs generated from proto/ (never edited by hand)",
    "cloud.storage.migrations.env": "alembic runs it inside its own migration context",
    "cloud.storage.migrations.versions": "alembic loads each revision file by path",
}


def _public_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        names.append(package)
        names += [found.name for found in pkgutil.walk_packages(root.__path__, f"{package}.")]
    return sorted(
        name
        for name in names
        if not any(part.startswith("_") for part in name.split("."))
        and not any(name == skipped or name.startswith(f"{skipped}.") for skipped in NOT_IMPORTED)
    )


def _defined_here(module: ModuleType) -> set[str]:
    """The public functions and classes `module` defines itself (not those it imports)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and getattr(value, "__module__", None) == module.__name__
    }


def _named_in(annotation: Any, seen: set[Any] | None = None) -> set[Any]:
    """The classes an annotation names, unwrapped from list[...], X | None, Annotated[...], and
    the models nested in a pydantic model's fields (a request's shape is all of them)."""
    seen = set() if seen is None else seen
    if inspect.isclass(annotation) and not get_args(annotation):
        if annotation not in seen:
            seen.add(annotation)
            if issubclass(annotation, BaseModel):
                for field in annotation.model_fields.values():
                    _named_in(field.annotation, seen)
        return seen
    for argument in get_args(annotation):
        _named_in(argument, seen)
    return seen


def _reached_through_routes(module: ModuleType) -> set[str]:
    """What `module`'s own routers or app reach: its handlers, their dependencies and models."""
    reached: set[Any] = set()
    for value in vars(module).values():
        if not isinstance(value, APIRouter | FastAPI):
            continue
        for route in value.routes:
            if not isinstance(route, APIRoute):
                continue
            reached.add(route.endpoint)
            waiting = [route.dependant]
            while waiting:
                dependant = waiting.pop()
                reached.add(dependant.call)
                waiting += dependant.dependencies
                for param in (
                    *dependant.path_params,
                    *dependant.query_params,
                    *dependant.header_params,
                    *dependant.body_params,
                ):
                    reached |= _named_in(param.field_info.annotation)
    return {thing.__name__ for thing in reached if getattr(thing, "__module__", None) == module.__name__}


MODULES = _public_modules()


def test_every_part_is_checked() -> None:
    assert {"dockside.errors", "dockside.http_errors", "cloud.app", "edge_agent.agent"} <= set(MODULES)
    assert {"hardware_mocks.printer", "hardware_mocks.scale"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exactly_the_public_api(name: str) -> None:
    module = importlib.import_module(name)
    defined = _defined_here(module) - _reached_through_routes(module)
    exported = getattr(module, "__all__", None)
    if exported is None:
        assert not defined, f"{name} defines {sorted(defined)} but has no __all__"
        return

    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    assert [n for n in exported if not hasattr(module, n)] == [], f"{name}.__all__ names what is not there"
    unlisted = sorted(defined - set(exported))
    assert unlisted == [], (
        f"{name} defines {unlisted} outside __all__: export them, or name them with a leading underscore"
    )


def test_the_error_tree_drawing_names_every_error() -> None:
    """dockside/errors.py opens with the whole tree: an error class added anywhere is drawn there."""
    for name in MODULES:
        importlib.import_module(name)
    drawing = errors.__doc__ or ""
    waiting, undrawn = [errors.DocksideError], []
    while waiting:
        error = waiting.pop()
        waiting += error.__subclasses__()
        if not error.__name__.startswith("_") and error.__name__ not in drawing:
            undrawn.append(f"{error.__module__}.{error.__name__}")

    assert sorted(undrawn) == [], "draw these in dockside/errors.py's tree"
