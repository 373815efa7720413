"""The JSON API under ``/api/v1/``: the console's pages as data, and the same actions.

Errors are ``{"error": "...", "field": "..." | null}`` with a 4xx status. Times are ISO 8601
with the local offset (``2026-12-01T10:30:00+01:00``).
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from ctiwatch.web import readmodel as cached
from ctiwatch.web.actions import INCIDENT_ACTIONS, perform
from ctiwatch.web.inputs import (
    B,
    CancelMaintenanceBody,
    ChangeMaintenanceBody,
    MaintenanceBody,
    QuestionBody,
    parse_json,
    parse_limit,
)
from ctiwatch.web.render import incident_json, jsonable, status_json
from ctiwatch.web.service import (
    INCIDENT_FILTERS,
    ConsoleService,
    ServiceError,
    incident_not_found,
)


def json_error(status: int, message: str, field: str | None = None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


class Api:
    def __init__(self, service: ConsoleService, tz: ZoneInfo) -> None:
        self._service = service
        self._tz = tz
        self._cache = cached.FragmentCache()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/status", self.status),
            web.get("/api/v1/incidents", self.incidents),
            web.get(r"/api/v1/incidents/{number:\d{1,9}}", self.incident),
            web.post(r"/api/v1/incidents/{number:\d{1,9}}/{action}", self.incident_action),
            web.post("/api/v1/questions", self.open_question),
            web.get("/api/v1/maintenance", self.maintenance),
            web.post("/api/v1/maintenance", self.schedule_maintenance),
            web.get(r"/api/v1/maintenance/{id:\d{1,9}}", self.maintenance_window),
            web.post(r"/api/v1/maintenance/{id:\d{1,9}}/change", self.change_maintenance),
            web.post(r"/api/v1/maintenance/{id:\d{1,9}}/cancel", self.cancel_maintenance),
        ]

    async def status(self, request: web.Request) -> web.Response:
        view = await self._service.status()
        return (
            await self._cache.fetch(
                view.version,
                "status.json",
                lambda: cached.data(json.dumps(status_json(view, self._tz))),
            )
        ).response(request)

    async def incidents(self, request: web.Request) -> web.Response:
        status = request.query.get("status") or None
        if status is not None and status not in INCIDENT_FILTERS:
            allowed = ", ".join(INCIDENT_FILTERS)
            raise ServiceError(f"status: must be one of {allowed}", "status")
        customer = request.query.get("customer") or None
        limit = parse_limit(request.query.get("limit"))
        found = await self._service.incidents(status, customer, limit)
        return web.json_response({"incidents": jsonable(found, self._tz)})

    async def incident(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        return web.json_response(await self._incident_body(number))

    async def incident_action(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        action = request.match_info["action"]
        model = INCIDENT_ACTIONS.get(action)
        if model is None:
            raise ServiceError(f"unknown action {action!r}", None, 404)
        body = await _body(request, model)
        await perform(self._service, number, action, body)
        return web.json_response(await self._incident_body(number))

    async def open_question(self, request: web.Request) -> web.Response:
        body = await _body(request, QuestionBody)
        number = await self._service.open_question(body.customer, body.actor, body.text)
        location = f"/api/v1/incidents/{number}"
        return web.json_response(
            {"number": number, "url": location}, status=201, headers={"Location": location}
        )

    async def maintenance(self, request: web.Request) -> web.Response:
        windows = await self._service.maintenance()
        return web.json_response({"maintenance": jsonable(windows, self._tz)})

    async def maintenance_window(self, request: web.Request) -> web.Response:
        window = await self._service.maintenance_window(int(request.match_info["id"]))
        return web.json_response(jsonable(window, self._tz))

    async def schedule_maintenance(self, request: web.Request) -> web.Response:
        body = await _body(request, MaintenanceBody)
        window = await self._service.schedule_maintenance(
            body.start,
            body.end,
            list(body.services) if body.services else None,
            body.customers,
            body.reason,
            body.actor,
            locations=body.locations,
            recurrence=body.recurrence or None,
            emergency=body.emergency,
            justification=body.justification,
        )
        location = f"/api/v1/maintenance/{window.id}"
        return web.json_response(
            jsonable(window, self._tz), status=201, headers={"Location": location}
        )

    async def change_maintenance(self, request: web.Request) -> web.Response:
        window_id = int(request.match_info["id"])
        body = await _body(request, ChangeMaintenanceBody)
        window = await self._service.change_maintenance(
            window_id,
            body.actor,
            body.why,
            body.start,
            body.end,
            list(body.services) if body.services else None,
            body.customers,
            body.reason,
            locations=body.locations,
            recurrence=body.recurrence or None,
            emergency=body.emergency,
            justification=body.justification,
        )
        return web.json_response(jsonable(window, self._tz))

    async def cancel_maintenance(self, request: web.Request) -> web.Response:
        window_id = int(request.match_info["id"])
        body = await _body(request, CancelMaintenanceBody)
        window = await self._service.cancel_maintenance(window_id, body.actor, body.why)
        return web.json_response(jsonable(window, self._tz))

    async def _incident_body(self, number: int) -> dict[str, Any]:
        detail = await self._service.incident(number)
        if detail is None:
            raise incident_not_found(number)
        return incident_json(detail, self._tz)


async def _body(request: web.Request, model: type[B]) -> B:
    if request.content_type != "application/json":
        raise ServiceError(
            "the request body must be JSON (Content-Type: application/json)", None, 415
        )
    return parse_json(model, await request.read())
