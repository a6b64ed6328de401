"""The OpenAPI document every service serves: readable operation ids, bearer auth, a problem document on
every 4xx, and nothing outside OpenAPI 3.1 (so validators and client generators take it as it is)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from enum import Enum
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared import auth
from shared.bodies import body_model
from shared.errors import PROBLEM_JSON, Problem

BEARER_SCHEME = "bearerAuth"
SCHEMA_REF = "#/components/schemas/{model}"
PROBLEM_REF = SCHEMA_REF.format(model="Problem")
_DEFAULT_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def operation_id(route: APIRoute) -> str:
    """`create_promotion` -> `createPromotion`: the endpoint function's name, which is unique within a service."""
    head, *rest = route.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def install_openapi(app: FastAPI) -> None:
    """Serve the completed document at `/openapi.json` (completed once per generation of the routes)."""
    generate = app.openapi
    completed: list[int] = []

    def openapi() -> dict[str, Any]:
        document = generate()
        if completed != [id(document)]:
            completed[:] = [id(document)]
            app.openapi_schema = complete(document, _scopes_by_operation(app), _bodies_by_operation(app))
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _scopes_by_operation(app: FastAPI) -> dict[tuple[str, str], list[str]]:
    scopes: dict[tuple[str, str], list[str]] = {}
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        required = required_scopes(context.dependant)
        if required is not None:
            for method in context.methods or ():
                scopes[(method.lower(), str(context.path_format))] = required
    return scopes


def _bodies_by_operation(app: FastAPI) -> dict[tuple[str, str], type[BaseModel]]:
    """The models of the bodies endpoints validate themselves (`shared.bodies.json_body`), per (method, path)."""
    bodies: dict[tuple[str, str], type[BaseModel]] = {}
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        models = [model for d in _dependencies(context.dependant) if (model := body_model(d.call)) is not None]
        if models:
            for method in context.methods or ():
                bodies[(method.lower(), str(context.path_format))] = models[0]
    return bodies


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)


def required_scopes(dependant: Dependant) -> list[str] | None:
    """The scopes an endpoint's auth dependencies demand; None for an endpoint without auth."""
    checks = [d.call for d in _dependencies(dependant) if getattr(d.call, "__module__", None) == auth.__name__]
    if not checks:
        return None
    scopes: list[str] = []
    for check in checks:
        if inspect.isfunction(check):
            scopes += [str(v.value) for v in inspect.getclosurevars(check).nonlocals.values() if isinstance(v, Enum)]
    return sorted(set(scopes))


def _problem_schemas() -> dict[str, Any]:
    _, top = models_json_schema([(Problem, "serialization")], ref_template=SCHEMA_REF)
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def _declare_bodies(document: dict[str, Any], bodies: dict[tuple[str, str], type[BaseModel]]) -> None:
    """The request body of each operation that validates its body itself, declared as FastAPI declares a body
    parameter: required JSON, a reference to the model's schema among the components (with those it uses)."""
    if not bodies:
        return
    models = sorted(set(bodies.values()), key=lambda model: model.__name__)
    _, top = models_json_schema([(model, "validation") for model in models], ref_template=SCHEMA_REF)
    document.setdefault("components", {}).setdefault("schemas", {}).update(top["$defs"])
    for (method, path), model in bodies.items():
        operation = document.get("paths", {}).get(path, {}).get(method)
        if operation is not None:
            schema = {"$ref": SCHEMA_REF.format(model=model.__name__)}
            operation["requestBody"] = {"content": {"application/json": {"schema": schema}}, "required": True}


def _problem_response(status: int, description: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
    }
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"description": "`Bearer`: how to authenticate", "schema": {"type": "string"}}
        }
    return response


_DEFAULT_DESCRIPTIONS = {
    401: "no API key, or an unknown or revoked one",
    403: "the API key lacks the scope this operation needs",
    404: "no such resource",
    413: "the request body is over the size limit",
    422: "invalid request: `errors` names every offending field",
}


def _expected_problems(method: str, operation: dict[str, Any], scopes: list[str] | None) -> set[int]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    expected = set()
    if scopes is not None:
        expected.add(401)
    # An operation open to any valid key never answers 403.
    if scopes:
        expected.add(403)
    if has_body:
        expected.add(413)
    if has_body or parameters:
        expected.add(422)
    # A path names a resource that may not exist; a PUT creates it instead.
    if method != "put" and any(p.get("in") == "path" for p in parameters):
        expected.add(404)
    return expected


def _without_item_schema(content: dict[str, Any]) -> None:
    """`itemSchema` is OpenAPI 3.2; under 3.1 a stream is a string, the item schema kept as an extension."""
    for media in content.values():
        item = media.pop("itemSchema", None)
        if item is not None:
            media["schema"] = {"type": "string", "description": "a stream of items, one per event"}
            media["x-itemSchema"] = item


def _refers_to(node: Any, refs: set[str]) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") in refs or any(_refers_to(v, refs) for v in node.values())
    if isinstance(node, list):
        return any(_refers_to(v, refs) for v in node)
    return False


def complete(
    document: dict[str, Any],
    scopes: dict[tuple[str, str], list[str]],
    bodies: dict[tuple[str, str], type[BaseModel]] | None = None,
) -> dict[str, Any]:
    """Bearer auth, problem documents on every 4xx, and 3.1-only keywords; `scopes` per (method, path), and the
    models of the bodies endpoints validate themselves (`bodies`)."""
    _declare_bodies(document, bodies or {})
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_problem_schemas())
    components["securitySchemes"] = {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key, `Authorization: Bearer <key>`. Each key carries scopes; an operation "
            "lists the one it needs.",
        }
    }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _HTTP_METHODS:
                continue
            required = scopes.get((method, path))
            if required is not None:
                operation["security"] = [{BEARER_SCHEME: required}]
                if required:
                    needs = ", ".join(f"`{s}`" for s in required)
                    operation["description"] = f"{operation.get('description', '')}\n\nScope: {needs}.".strip()
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in _expected_problems(method, operation, required):
                responses.setdefault(str(status), {"description": _DEFAULT_DESCRIPTIONS[status]})
            for code, response in list(responses.items()):
                if code.isdigit() and 400 <= int(code) < 500:
                    responses[code] = _problem_response(int(code), response.get("description"))
                _without_item_schema(response.get("content", {}))
            operation["responses"] = dict(sorted(responses.items()))
    unused = {f"#/components/schemas/{name}" for name in _DEFAULT_VALIDATION_SCHEMAS}
    if not _refers_to(document.get("paths", {}), unused):
        for name in _DEFAULT_VALIDATION_SCHEMAS:
            schemas.pop(name, None)
    components["schemas"] = dict(sorted(schemas.items()))
    return document
