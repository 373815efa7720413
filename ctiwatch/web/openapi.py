"""The OpenAPI 3.1 document of the JSON API, built from the app's route table.

Each ``/api/v1`` handler carries a small declaration (:func:`operation`): a summary, the
pydantic model its body is validated with, the type of what it answers (a view model of
:mod:`ctiwatch.web.service`, described through a pydantic ``TypeAdapter``), its parameters and
the error statuses it may give. :func:`openapi_document` walks the router, so a route without a
declaration, or a declaration without a route, cannot go unnoticed (``tests/unit/
test_web_openapi.py``). The role each operation needs is read from the auth rules
(:func:`ctiwatch.web.auth.required_role`), never declared twice. No schema is written by hand:
they are the models' own JSON Schemas.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from ctiwatch.web.auth import PUBLIC, required_role

API_PREFIX = "/api/v1"
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
REF = "#/components/schemas/{model}"

ERROR_WORDS: dict[int, str] = {
    400: "Bad input; `field` names the input at fault",
    401: "No API token, or one that is unknown or revoked",
    403: "The token's role is too low for this operation",
    404: "No such incident, window or route",
    409: "Not possible in the current state",
    415: "The body is not JSON (`Content-Type: application/json`)",
    503: "The database is not reachable; nothing changed, try again",
}
_ALWAYS = (401, 403, 503)


class ErrorBody(BaseModel):
    """Every error the API answers with."""

    error: str
    field: str | None


@dataclass(frozen=True, slots=True)
class Param:
    """A path or query parameter; ``schema`` is a JSON Schema (from :func:`schema_of` or a
    small literal for plain strings and bounded integers)."""

    name: str
    where: Literal["path", "query"]
    schema: Mapping[str, Any]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Merged:
    """An answer that is ``base``'s fields and ``extra``'s (without ``drop``) side by side,
    e.g. an incident: its summary's fields at the top level with its deadlines and timeline."""

    base: Any
    extra: Any
    drop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    response: Any  # a type (or Merged) describing the 2xx answer
    status: int = 200
    body: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    description: str = ""
    tags: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # answer header -> description


H = TypeVar("H", bound=Callable[..., Any])
_ATTRIBUTE = "__openapi__"


def operation(**declaration: Any) -> Callable[[H], H]:
    """Declare what a handler takes and answers (the fields of :class:`Operation`)."""
    described = Operation(**declaration)

    def mark(handler: H) -> H:
        setattr(handler, _ATTRIBUTE, described)
        return handler

    return mark


def declared(handler: Any) -> Operation | None:
    found = getattr(handler, _ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


def id_param(name: str, what: str) -> Param:
    """A numeric id in the path (the routes' ``\\d{1,9}``)."""
    schema = {"type": "integer", "minimum": 0, "maximum": 999_999_999}
    return Param(name, "path", schema, what)


class _Schemas:
    """Collects the components: every model's JSON Schema under its own name."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}
        self.components["ErrorBody"] = self._of(ErrorBody, "validation")

    def _of(self, kind: Any, mode: Literal["validation", "serialization"]) -> dict[str, Any]:
        schema = TypeAdapter(kind).json_schema(ref_template=REF, mode=mode)
        self.components.update(schema.pop("$defs", {}))
        return schema

    def ref(self, kind: Any, mode: Literal["validation", "serialization"]) -> dict[str, Any]:
        if isinstance(kind, Merged):
            return self._merged(kind, mode)
        schema = self._of(kind, mode)
        name = getattr(kind, "__name__", None)
        if name and schema.get("type") == "object" and "title" in schema:
            self.components[name] = schema
            return {"$ref": REF.format(model=name)}
        return schema

    def _merged(
        self, merged: Merged, mode: Literal["validation", "serialization"]
    ) -> dict[str, Any]:
        extra = self._of(merged.extra, mode)
        properties = {k: v for k, v in extra.get("properties", {}).items() if k not in merged.drop}
        required = [k for k in extra.get("required", []) if k not in merged.drop]
        rest = {"type": "object", "properties": properties, "required": required}
        return {"allOf": [self.ref(merged.base, mode), rest]}


def _path_of(resource: web.AbstractResource) -> str:
    return resource.canonical


def api_routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, canonical path, handler) of every ``/api/v1`` route but the HEAD twins."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        path = _path_of(resource)
        if path.startswith(API_PREFIX + "/"):
            found.append((route.method, path, route.handler))
    return found


def openapi_document(app: web.Application, *, version: str = "1") -> dict[str, Any]:
    """The document for every declared ``/api/v1`` route of ``app``; a route without a
    declaration is an error (:class:`LookupError`), so the document never leaves one out."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in api_routes(app):
        described = declared(handler)
        if described is None:
            raise LookupError(f"{method} {path} has no OpenAPI declaration (@operation)")
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, described, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ctiwatch API",
            "version": version,
            "description": (
                "The operations console's data and actions. Every operation needs an API "
                "token (`Authorization: Bearer <token>`, made on the admin page or with "
                "`ctiwatch token create`); the role it needs is given with each operation. "
                'Errors are `{"error": ..., "field": ...}`. Times are ISO 8601 with the '
                "local offset."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


def _operation(method: str, path: str, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    role = required_role(method, path)
    needs = "no login" if role == PUBLIC else f"the `{role}` role or higher"
    description = (op.description + "\n\n" if op.description else "") + f"Needs {needs}."
    answer: dict[str, Any] = {
        "description": op.summary,
        "content": {"application/json": {"schema": schemas.ref(op.response, "serialization")}},
    }
    if op.headers:
        answer["headers"] = {
            name: {"description": words, "schema": {"type": "string"}}
            for name, words in op.headers.items()
        }
    responses: dict[str, Any] = {str(op.status): answer}
    errors = set(op.errors) | set(_ALWAYS)
    if op.params:
        errors.add(400)
    if any(p.where == "path" for p in op.params):
        errors.add(404)
    if op.body is not None:
        errors |= {400, 415}
    error_schema = {"$ref": REF.format(model="ErrorBody")}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERROR_WORDS[status],
            "content": {"application/json": {"schema": error_schema}},
        }
    result: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": op.summary,
        "description": description,
        "x-required-role": role,
        "responses": responses,
    }
    if op.tags:
        result["tags"] = list(op.tags)
    if op.params:
        result["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.where == "path",
                "description": p.description,
                "schema": dict(p.schema),
            }
            for p in op.params
        ]
    if op.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(op.body, "validation")}},
        }
    return result


def _operation_id(method: str, path: str) -> str:
    words = re.findall(r"[a-z0-9]+", path.removeprefix(API_PREFIX).replace("{", "by_"))
    return "_".join([method.lower(), *words]) or method.lower()


def openapi_route() -> web.RouteDef:
    """``GET /api/v1/openapi.json``: this document, for the app that serves it."""

    @operation(
        summary="This API's OpenAPI 3.1 document",
        response=dict[str, Any],
        tags=("meta",),
    )
    async def openapi_json(request: web.Request) -> web.Response:
        if not built:  # the route table is frozen once the app serves: build it once
            built.append(openapi_document(request.app))
        return web.json_response(built[0])

    built: list[dict[str, Any]] = []
    return web.get(OPENAPI_PATH, openapi_json)
