"""The console's HTML pages: status, incidents, questions and maintenance.

Forms POST, then redirect (post/redirect/get) with ``?done=<code>``. A refused form renders
the same page again with the message, the field marked and what was typed kept, answering
with the error's status (400, 404, 409). Who acts is the logged-in user (:mod:`.auth`); every
form carries the session's CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from ctiwatch.web import readmodel as cached
from ctiwatch.web.actions import DONE_MESSAGES, INCIDENT_ACTIONS, perform
from ctiwatch.web.auth import actor_name, principal_of, remote_address
from ctiwatch.web.inputs import (
    B,
    CancelMaintenanceBody,
    MaintenanceBody,
    QuestionBody,
    ResolveBody,
    parse_form,
    parse_limit,
    parse_local_time,
)
from ctiwatch.web.render import overall
from ctiwatch.web.service import (
    INCIDENT_FILTERS,
    ConsoleService,
    ServiceError,
    check_status_filter,
)

NONCE = web.RequestKey("csp_nonce", str)

# What each form's fields are called on the page: a refused form names the field the person
# sees ("Update: must not be empty"), the JSON API keeps the field's own name ("text").
_ACTOR_LABEL: dict[str, str] = {}
INCIDENT_LABELS = {**_ACTOR_LABEL, "text": "Update", "priority": "Priority", "reason": "Reason"}
RESOLVE_LABELS = {**_ACTOR_LABEL, "reason": "Why resolve it now"}
QUESTION_LABELS = {**_ACTOR_LABEL, "customer": "Customer", "text": "Question"}
MAINTENANCE_LABELS = {
    **_ACTOR_LABEL,
    "start": "Start",
    "end": "End",
    "services": "Services",
    "customers": "Customers",
    "locations": "Locations",
    "reason": "Reason",
    "recurrence": "Repeat",
    "justification": "Justification",
    "why": "Why cancel",
}


class Pages:
    def __init__(self, service: ConsoleService, env: jinja2.Environment, tz: ZoneInfo) -> None:
        self._service = service
        self._env = env
        self._tz = tz
        self._cache = cached.FragmentCache()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.status),
            web.get("/fragments/status", self.status_fragment),
            web.get("/wall", self.wall),
            web.get("/fragments/wall", self.wall_fragment),
            web.get("/incidents", self.incidents),
            web.get("/incidents/new", self.new_question),
            web.post("/incidents/new", self.open_question),
            web.get(r"/incidents/{number:\d{1,9}}", self.incident),
            web.post(r"/incidents/{number:\d{1,9}}/{action}", self.incident_action),
            web.get("/maintenance", self.maintenance),
            web.post("/maintenance", self.schedule_maintenance),
            web.post(r"/maintenance/{id:\d{1,9}}/cancel", self.cancel_maintenance),
        ]

    def render(
        self, request: web.Request, template: str, status: int = 200, **context: Any
    ) -> web.Response:
        user = principal_of(request)
        context.setdefault("user", user)
        context["csrf"] = user.csrf_token if user is not None else ""
        context.setdefault("kiosk", False)
        context.setdefault("error", None)
        context.setdefault("form", {})
        done = request.query.get("done", "")
        context.setdefault("notice", DONE_MESSAGES.get(done))
        context["nonce"] = request.get(NONCE, "")
        context["path"] = request.path
        html = self._env.get_template(template).render(**context)
        return web.Response(text=html, status=status, content_type="text/html")

    def error_page(self, request: web.Request, status: int, message: str) -> web.Response:
        return self.render(
            request, "error.html", status=status, status_code=status, message=message
        )

    # --- status --------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        if request.query.get("layout") == "wall":
            return await self.wall(request)
        status = await self._service.status()
        if "done" in request.query:
            return self.render(request, "status.html", view=status, banner=overall(status))
        return (
            await self._cache.fetch(
                status.version,
                "status.html",
                lambda: cached.page(
                    self.shared("status.html", "/", view=status, banner=overall(status))
                ),
            )
        ).response(request)

    async def status_fragment(self, request: web.Request) -> web.Response:
        """The live part of the status page (``#live``), for the page's script to swap in."""
        status = await self._service.status()
        return (
            await self._cache.fetch(
                status.version,
                "status_live.html",
                lambda: cached.page(
                    self.shared("status_live.html", "/", view=status, banner=overall(status))
                ),
            )
        ).response(request)

    async def wall(self, request: web.Request) -> web.Response:
        """The wall screen: every user's every service, dense and readable at a distance."""
        return await self._cached_page(request, "wall.html", "/wall")

    async def wall_fragment(self, request: web.Request) -> web.Response:
        return await self._cached_page(request, "wall_live.html", "/wall")

    async def _cached_page(self, request: web.Request, template: str, path: str) -> web.Response:
        status = await self._service.status()
        return (
            await self._cache.fetch(
                status.version,
                template,
                lambda: cached.page(
                    self.shared(template, path, view=status, banner=overall(status))
                ),
            )
        ).response(request)

    def shared(self, template: str, path: str, **context: Any) -> str:
        """``template`` as every visitor gets it (no name, notice or nonce): cacheable."""
        # Nobody's page: no user menu, no CSRF token (it holds no form that changes anything).
        context.update(actor="", error=None, form={}, notice=None, nonce="", path=path)
        context.update(user=None, csrf="", kiosk=context.get("kiosk", False))
        return self._env.get_template(template).render(**context)

    # --- incidents -----------------------------------------------------------------------

    async def incidents(self, request: web.Request) -> web.Response:
        status_filter = request.query.get("status") or None
        customer = request.query.get("customer") or None
        view = await self._service.status()
        error: ServiceError | None = None
        found = []
        try:
            check_status_filter(status_filter)
            limit = parse_limit(request.query.get("limit"), default=200)
            found = await self._service.incidents(status_filter, customer, limit)
        except ServiceError as exc:
            error = exc
        return self.render(
            request,
            "incidents.html",
            status=error.status if error else 200,
            incidents=found,
            customers=view.customers,
            filters=INCIDENT_FILTERS,
            selected_status=status_filter or "",
            selected_customer=customer or "",
            error=error,
        )

    async def incident(self, request: web.Request) -> web.Response:
        return await self._incident_page(request, int(request.match_info["number"]))

    async def _incident_page(
        self,
        request: web.Request,
        number: int,
        status: int = 200,
        error: ServiceError | None = None,
        form: Mapping[str, str] | None = None,
        confirm_resolve: bool = False,
    ) -> web.Response:
        detail = await self._service.incident(number)
        if detail is None:
            return self.error_page(request, 404, f"Incident {number} does not exist.")
        return self.render(
            request,
            "incident.html",
            status=status,
            incident=detail,
            i=detail.summary,
            error=error,
            form=form or {},
            confirm_resolve=confirm_resolve,
            holding=[s for s in detail.scope if not s.cleared],
        )

    async def incident_action(self, request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        action = request.match_info["action"]
        model = INCIDENT_ACTIONS.get(action)
        if model is None:
            return self.error_page(request, 404, f"There is no action {action!r}.")
        form = await request.post()
        typed = _strings(form)
        try:
            body = _resolve_body(form) if model is ResolveBody else _form_body(model, form)
            await perform(
                self._service,
                number,
                action,
                body,
                actor_name(request),
                remote_address(request),
            )
        except ServiceError as exc:
            if exc.status == 404:
                return self.error_page(request, 404, exc.message)
            if model is ResolveBody and exc.field in ("force", "reason"):
                # Conditions still hold: ask to confirm, with the reason the timeline needs.
                shown = None if exc.field == "force" else form_error(exc, RESOLVE_LABELS)
                return await self._incident_page(
                    request, number, exc.status, shown, typed, confirm_resolve=True
                )
            error = form_error(exc, INCIDENT_LABELS)
            page = await self._incident_page(request, number, exc.status, error, typed)
            return _retry_after(page, exc)
        return _redirect(f"/incidents/{number}?done={action}")

    async def new_question(self, request: web.Request) -> web.Response:
        view = await self._service.status()
        return self.render(request, "question.html", customers=view.customers)

    async def open_question(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            body = _form_body(QuestionBody, form)
            number = await self._service.open_question(
                body.customer, actor_name(request), body.text, address=remote_address(request)
            )
        except ServiceError as exc:
            view = await self._service.status()
            page = self.render(
                request,
                "question.html",
                status=exc.status,
                customers=view.customers,
                error=form_error(exc, QUESTION_LABELS),
                form=_strings(form),
            )
            return _retry_after(page, exc)
        return _redirect(f"/incidents/{number}?done=question")

    # --- maintenance ---------------------------------------------------------------------

    async def maintenance(self, request: web.Request) -> web.Response:
        return await self._maintenance_page(request)

    async def _maintenance_page(
        self,
        request: web.Request,
        status: int = 200,
        error: ServiceError | None = None,
        form: Mapping[str, Any] | None = None,
    ) -> web.Response:
        view = await self._service.status()
        windows = await self._service.maintenance()
        return self.render(
            request,
            "maintenance.html",
            status=status,
            windows=windows,
            customers=view.customers,
            now=view.generated_at,
            error=error,
            form=form or {},
        )

    async def schedule_maintenance(self, request: web.Request) -> web.Response:
        form = await request.post()
        typed: dict[str, Any] = _strings(form)
        typed["services"] = form.getall("services", [])
        typed["customers"] = form.getall("customers", [])
        typed["locations"] = form.getall("locations", [])
        try:
            data: dict[str, Any] = {
                "start": parse_local_time(str(form.get("start", "")), "start", self._tz),
                "end": parse_local_time(str(form.get("end", "")), "end", self._tz),
                "services": typed["services"] or None,
                "customers": typed["customers"] or None,
                "locations": typed["locations"] or None,
                "reason": form.get("reason", ""),
                "recurrence": str(form.get("recurrence", "")).strip() or None,
                "emergency": "emergency" in form,
                "justification": form.get("justification", ""),
            }
            body = parse_form(MaintenanceBody, data)
            await self._service.schedule_maintenance(
                body.start,
                body.end,
                list(body.services) if body.services else None,
                body.customers,
                body.reason,
                actor_name(request),
                locations=body.locations,
                recurrence=body.recurrence,
                emergency=body.emergency,
                justification=body.justification,
                address=remote_address(request),
            )
        except ServiceError as exc:
            error = form_error(exc, MAINTENANCE_LABELS)
            return await self._maintenance_page(request, exc.status, error, typed)
        return _redirect("/maintenance?done=scheduled")

    async def cancel_maintenance(self, request: web.Request) -> web.Response:
        window_id = int(request.match_info["id"])
        form = await request.post()
        try:
            body = _form_body(CancelMaintenanceBody, form)
            await self._service.cancel_maintenance(
                window_id, actor_name(request), body.why, address=remote_address(request)
            )
        except ServiceError as exc:
            error = form_error(exc, MAINTENANCE_LABELS)
            return await self._maintenance_page(request, exc.status, error, _strings(form))
        return _redirect("/maintenance?done=cancelled")


def form_error(error: ServiceError, labels: Mapping[str, str]) -> ServiceError:
    """``error`` as a form shows it: a message starting with the field's name (``actor: ...``,
    ``services[0]: ...``, ``end must be ...``) starts with its label instead. Field and status stay.
    """
    label = labels.get(error.field or "")
    if label is None or error.field is None:
        return error
    pattern = rf"^{re.escape(error.field)}(?:\[[^\]]*\]|\.[^\s:\[]+)*(?=[: ])"
    message = re.sub(pattern, label, error.message, count=1)
    return ServiceError(message, error.field, error.status)


def _strings(form: MultiDictProxy[Any]) -> dict[str, str]:
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _form_body(model: type[B], form: MultiDictProxy[Any]) -> B:
    """Only the fields ``model`` knows: one form on the incident page serves every action."""
    data = {name: form[name] for name in model.model_fields if name in form}
    return parse_form(model, data)


def _resolve_body(form: MultiDictProxy[Any]) -> ResolveBody:
    """The incident page's one form also carries the priority's ``reason``: a resolve reads
    its own fields, ``resolve_reason`` and ``force``, sent by the confirmation."""
    data: dict[str, Any] = {}
    if "resolve_reason" in form:
        data["reason"] = form["resolve_reason"]
    if "force" in form:
        data["force"] = form["force"]
    return parse_form(ResolveBody, data)


def _retry_after(response: web.Response, error: ServiceError) -> web.Response:
    """A form answered 503 during a takeover says when to try again."""
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})
