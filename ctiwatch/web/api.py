"""The JSON API under ``/api/v1/``: the console's pages as data, and the same actions.

Errors are ``{"error": "...", "field": "..." | null}`` with a 4xx status. Times are ISO 8601
with the local offset (``2026-12-01T10:30:00+01:00``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.typedefs import Handler

from ctiwatch.kpi import KpiDocument, kpi_document, kpi_json
from ctiwatch.web import readmodel as cached
from ctiwatch.web.actions import INCIDENT_ACTIONS, perform
from ctiwatch.web.auth import actor_name, remote_address
from ctiwatch.web.inputs import (
    B,
    CancelMaintenanceBody,
    ChangeMaintenanceBody,
    MaintenanceBody,
    QuestionBody,
    check_query,
    parse_json,
    parse_limit,
)
from ctiwatch.web.openapi import Merged, Param, id_param, openapi_route, operation
from ctiwatch.web.render import Overall, StatusJson, incident_json, jsonable
from ctiwatch.web.service import (
    INCIDENT_FILTERS,
    ConsoleService,
    IncidentDetail,
    IncidentSummary,
    MaintenanceView,
    ServiceError,
    StatusView,
    incident_not_found,
)
from sla.kpi import MONTH_PATTERN

# --- what the API answers (beside the service's view models) ----------------------------------


@dataclass(frozen=True, slots=True)
class IncidentList:
    incidents: tuple[IncidentSummary, ...]


@dataclass(frozen=True, slots=True)
class MaintenanceList:
    maintenance: tuple[MaintenanceView, ...]


@dataclass(frozen=True, slots=True)
class QuestionOpened:
    number: int
    url: str  # the new incident's API path (also in the Location header)


@dataclass(frozen=True, slots=True)
class StatusBanner:
    overall: Overall


# The status: the banner and the whole status view side by side.
STATUS = Merged(StatusView, StatusBanner)
# An incident: its summary's fields at the top level, then its scope, deadlines and timeline.
INCIDENT = Merged(IncidentSummary, IncidentDetail, drop=("summary",))
NUMBER = id_param("number", "The incident's number")
WINDOW = id_param("id", "The maintenance window's id")
MONTH = Param(
    "month",
    "query",
    {"type": "string", "pattern": MONTH_PATTERN, "examples": ["2026-12"]},
    "A local month, YYYY-MM (1970-01 to 2999-12); default: the current month",
)
ACTION_WORDS = {
    "ack": "Acknowledge an incident (the response target is met)",
    "update": "Post an update on an incident",
    "priority": "Change an incident's priority, with a reason",
    "resolve": "Resolve an incident (force and a reason while its conditions still hold)",
    "reopen": "Reopen a resolved incident",
}


def json_error(status: int, message: str, field: str | None = None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


class Api:
    def __init__(self, service: ConsoleService, tz: ZoneInfo) -> None:
        self._service = service
        self._tz = tz
        self._cache = cached.FragmentCache()
        self._status_json = StatusJson(tz)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/status", self.status),
            web.get("/api/v1/incidents", self.incidents),
            web.get(r"/api/v1/incidents/{number:\d{1,9}}", self.incident),
            *(
                web.post(rf"/api/v1/incidents/{{number:\d{{1,9}}}}/{action}", self._action(action))
                for action in INCIDENT_ACTIONS
            ),
            web.post("/api/v1/questions", self.open_question),
            web.get("/api/v1/maintenance", self.maintenance),
            web.post("/api/v1/maintenance", self.schedule_maintenance),
            web.get(r"/api/v1/maintenance/{id:\d{1,9}}", self.maintenance_window),
            web.post(r"/api/v1/maintenance/{id:\d{1,9}}/change", self.change_maintenance),
            web.post(r"/api/v1/maintenance/{id:\d{1,9}}/cancel", self.cancel_maintenance),
            web.get("/api/v1/reports/kpi", self.kpi_report),
            openapi_route(),
        ]

    @operation(summary="The live status: banner, tiles, incidents, agents", response=STATUS)
    async def status(self, request: web.Request) -> web.Response:
        view = await self._service.status()
        found = await self._cache.fetch(
            view.version,
            "status.json",
            lambda: cached.data_of(self._status_json.pieces(view)),
            view.epoch,
        )
        return found.response(request)

    @operation(
        summary="Incidents, newest first",
        response=IncidentList,
        params=(
            Param(
                "status",
                "query",
                {"type": "string", "enum": list(INCIDENT_FILTERS)},
                "active: open or acknowledged; else one state",
            ),
            Param("customer", "query", {"type": "string"}, "A customer's id"),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}),
        ),
    )
    async def incidents(self, request: web.Request) -> web.Response:
        check_query(request.query, ("status", "customer", "limit"))
        status = request.query.get("status") or None
        if status is not None and status not in INCIDENT_FILTERS:
            allowed = ", ".join(INCIDENT_FILTERS)
            raise ServiceError(f"status: must be one of {allowed}", "status")
        customer = request.query.get("customer") or None
        limit = parse_limit(request.query.get("limit"))
        found = await self._service.incidents(status, customer, limit)
        return web.json_response(jsonable(IncidentList(tuple(found)), self._tz))

    @operation(summary="One incident with its scope, deadlines and timeline", response=INCIDENT,
               params=(NUMBER,))  # fmt: skip
    async def incident(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        return web.json_response(await self._incident_body(number))

    def _action(self, action: str) -> Handler:
        model = INCIDENT_ACTIONS[action]

        @operation(
            summary=ACTION_WORDS[action],
            body=model,
            response=INCIDENT,
            params=(NUMBER,),
            errors=(409,),
            description="Answers the incident as it is after the action.",
        )
        async def incident_action(request: web.Request) -> web.Response:
            number = int(request.match_info["number"])
            body = await _body(request, model)
            await perform(
                self._service, number, action, body, actor_name(request), remote_address(request)
            )
            return web.json_response(await self._incident_body(number))

        return incident_action

    @operation(
        summary="Open a question (a P4 incident, no impact on the service)",
        body=QuestionBody,
        response=QuestionOpened,
        status=201,
        headers={"Location": "The new incident's API path"},
    )
    async def open_question(self, request: web.Request) -> web.Response:
        body = await _body(request, QuestionBody)
        number = await self._service.open_question(
            body.customer, actor_name(request), body.text, address=remote_address(request)
        )
        location = f"/api/v1/incidents/{number}"
        return web.json_response(
            jsonable(QuestionOpened(number, location), self._tz),
            status=201,
            headers={"Location": location},
        )

    @operation(summary="Every maintenance window, newest start first", response=MaintenanceList)
    async def maintenance(self, request: web.Request) -> web.Response:
        windows = await self._service.maintenance()
        return web.json_response(jsonable(MaintenanceList(tuple(windows)), self._tz))

    @operation(summary="One maintenance window with its history", response=MaintenanceView,
               params=(WINDOW,))  # fmt: skip
    async def maintenance_window(self, request: web.Request) -> web.Response:
        window = await self._service.maintenance_window(int(request.match_info["id"]))
        return web.json_response(jsonable(window, self._tz))

    @operation(
        summary="Schedule a maintenance window (the SLA's notice and support-hours rules apply)",
        body=MaintenanceBody,
        response=MaintenanceView,
        status=201,
        headers={"Location": "The new window's API path"},
    )
    async def schedule_maintenance(self, request: web.Request) -> web.Response:
        body = await _body(request, MaintenanceBody)
        window = await self._service.schedule_maintenance(
            body.window(), actor_name(request), address=remote_address(request)
        )
        location = f"/api/v1/maintenance/{window.id}"
        return web.json_response(
            jsonable(window, self._tz), status=201, headers={"Location": location}
        )

    @operation(
        summary="Change a maintenance window (what it was before is kept, with why)",
        body=ChangeMaintenanceBody,
        response=MaintenanceView,
        params=(WINDOW,),
        errors=(409,),
    )
    async def change_maintenance(self, request: web.Request) -> web.Response:
        window_id = int(request.match_info["id"])
        body = await _body(request, ChangeMaintenanceBody)
        window = await self._service.change_maintenance(
            window_id, body.window(), actor_name(request), body.why, address=remote_address(request)
        )
        return web.json_response(jsonable(window, self._tz))

    @operation(
        summary="Cancel a maintenance window (kept as cancelled)",
        body=CancelMaintenanceBody,
        response=MaintenanceView,
        params=(WINDOW,),
        errors=(409,),
    )
    async def cancel_maintenance(self, request: web.Request) -> web.Response:
        window_id = int(request.match_info["id"])
        body = await _body(request, CancelMaintenanceBody)
        window = await self._service.cancel_maintenance(
            window_id, actor_name(request), body.why, address=remote_address(request)
        )
        return web.json_response(jsonable(window, self._tz))

    @operation(
        summary="The SLA KPI report of a month, per priority (as `ctiwatch report kpi`)",
        response=KpiDocument,
        params=(MONTH,),
        description=(
            "The incidents opened in the month (local time), per priority: the shares that met "
            "their response, update and repair targets, the share that met the SLA (response "
            "and, where set, update) against the performance target, and the repair time in "
            "support hours. Open incidents whose response or update is not due yet are "
            "`pending` and not counted. The same numbers as the console's KPI page and "
            "`ctiwatch report kpi --month YYYY-MM --format json`."
        ),
    )
    async def kpi_report(self, request: web.Request) -> web.Response:
        check_query(request.query, ("month",))
        report = await self._service.kpi_report(request.query.get("month") or None)
        document = kpi_document(report.rows, report.performance_target, report.month)
        return web.json_response(kpi_json(document))

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
