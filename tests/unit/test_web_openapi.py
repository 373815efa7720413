"""The API's OpenAPI 3.1 document, served at ``/api/v1/openapi.json``: a valid document,
built from the app's own route table and models, with every ``/api/v1`` route in it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from auth_helpers import bearer, make_accounts, token_for
from console_scene import example_scene, real_console, sqlite_url
from openapi_spec_validator import validate

from ctiwatch.web.app import build_web_app
from ctiwatch.web.openapi import OPENAPI_PATH, api_routes, openapi_document

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
METHODS = {"get", "post", "put", "patch", "delete"}


def bare_app() -> web.Application:
    """The app's route table; no request reaches the service here."""
    return build_web_app(None, accounts=None, metrics_registry=None)  # type: ignore[arg-type]


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


async def served(aiohttp_client: ClientFactory, tmp_path: Any, role: str) -> tuple[int, Any]:
    async with real_console(sqlite_url(tmp_path)) as scene:
        await example_scene(scene)
        accounts = make_accounts(scene.store, scene.clock)
        app = build_web_app(scene.console, accounts=accounts, metrics_registry=None)
        client = await aiohttp_client(app)
        secret = await token_for(accounts, "reader", role)
        anonymous = await client.get(OPENAPI_PATH)
        assert anonymous.status == 401
        response = await client.get(OPENAPI_PATH, headers=bearer(secret))
        return response.status, await response.json()


async def test_the_served_openapi_document_validates_as_openapi_3_1(
    aiohttp_client: ClientFactory, tmp_path: Any
) -> None:
    status, document = await served(aiohttp_client, tmp_path, "viewer")
    assert status == 200
    assert document["openapi"] == "3.1.0"
    validate(document)
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
    }
    assert document["security"] == [{"bearer": []}]


def test_every_api_route_is_in_the_document_and_every_operation_is_a_route() -> None:
    app = bare_app()
    routes = {(method, path) for method, path, _ in api_routes(app)}
    documented = operations(openapi_document(app))
    assert routes == documented
    assert ("GET", OPENAPI_PATH) in documented
    assert ("POST", "/api/v1/incidents/{number}/resolve") in documented
    assert ("GET", "/api/v1/audit") in documented


def test_request_bodies_are_the_input_models_and_errors_share_one_shape() -> None:
    document = openapi_document(bare_app())
    schemas = document["components"]["schemas"]
    resolve = document["paths"]["/api/v1/incidents/{number}/resolve"]["post"]
    assert resolve["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ResolveBody"
    }
    assert schemas["ResolveBody"]["additionalProperties"] is False
    assert schemas["PriorityBody"]["properties"]["priority"]["maximum"] == 4
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)
    assert schemas["ErrorBody"]["required"] == ["error", "field"]


def test_each_operation_names_the_role_the_auth_rules_require() -> None:
    paths = openapi_document(bare_app())["paths"]
    assert paths["/api/v1/status"]["get"]["x-required-role"] == "viewer"
    assert paths["/api/v1/incidents/{number}/ack"]["post"]["x-required-role"] == "oncall"
    assert paths["/api/v1/maintenance"]["post"]["x-required-role"] == "maintainer"
    assert paths["/api/v1/audit"]["get"]["x-required-role"] == "admin"
    assert "`admin` role" in paths["/api/v1/audit"]["get"]["description"]


def test_an_api_route_without_a_declaration_cannot_be_left_out_of_the_document() -> None:
    async def undeclared(request: web.Request) -> web.Response:
        return web.json_response({})

    app = build_web_app(
        None,  # type: ignore[arg-type]
        accounts=None,  # type: ignore[arg-type]
        metrics_registry=None,
        extra_routes=lambda a: a.router.add_get("/api/v1/undeclared", undeclared),
    )
    with pytest.raises(LookupError, match="GET /api/v1/undeclared has no OpenAPI declaration"):
        openapi_document(app)
