"""The console's HTML pages: status, incidents, questions and maintenance.

Forms POST, then redirect (post/redirect/get) with ``?done=<code>``. A refused form renders
the same page again with the message, the field marked and what was typed kept, answering
with the error's status (400, 404, 409). Who acts is the logged-in user (:mod:`.auth`); every
form carries the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from markupsafe import Markup
from multidict import MultiDictProxy

from ctiwatch.accounts import Principal
from ctiwatch.kpi import kpi_csv, kpi_target_text
from ctiwatch.web import readmodel as cached
from ctiwatch.web.actions import DONE_MESSAGES, INCIDENT_ACTIONS, perform
from ctiwatch.web.auth import actor_name, principal_of, remote_address
from ctiwatch.web.inputs import (
    B,
    CancelMaintenanceBody,
    ChangeMaintenanceBody,
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
    MaintenanceView,
    ServiceError,
    StatusView,
    check_status_filter,
)
from sla.kpi import MonthError, parse_month
from sla.words import service_name

NONCE = web.RequestKey("csp_nonce", str)
VIEWERS_KEPT = 1_000  # viewers' header parts kept rendered (then forgotten all at once)

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
CHANGE_LABELS = {**MAINTENANCE_LABELS, "why": "Why change"}


class Pages:
    def __init__(self, service: ConsoleService, env: jinja2.Environment, tz: ZoneInfo) -> None:
        self._service = service
        self._env = env
        self._tz = tz
        self._cache = cached.FragmentCache()
        self._live: tuple[StatusView, asyncio.Future[str]] | None = None
        # The viewers' own header parts, by who and where: a few hundred bytes each.
        self._viewers: dict[tuple[Principal | None, str], bytes] = {}

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
            web.get(r"/maintenance/{id:\d{1,9}}", self.maintenance_window),
            web.post(r"/maintenance/{id:\d{1,9}}/change", self.change_maintenance),
            web.post(r"/maintenance/{id:\d{1,9}}/cancel", self.cancel_maintenance),
            web.get("/reports/kpi", self.kpi),
            web.get("/reports/kpi.csv", self.kpi_csv),
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

        async def render() -> cached.Framed:
            live = Markup(await self._live_html(status))
            return await cached.framed_of(
                self.pieces(
                    "status.html",
                    "/",
                    view=status,
                    banner=overall(status),
                    viewer_slot=cached.SLOT,
                    live=live,
                )
            )

        shared = await self._cache.fetch(status.version, "status.html", render, status.epoch)
        return shared.response(request, self.viewer(request))

    def viewer(self, request: web.Request) -> bytes:
        """The viewer's own part of the header (``viewer.html``) for a shared page: their
        name, role, admin links and log-out form with their CSRF token."""
        user = principal_of(request)
        key = (user, request.path)
        found = self._viewers.get(key)
        if found is None:
            if len(self._viewers) >= VIEWERS_KEPT:
                self._viewers.clear()
            context = {"user": user, "csrf": user.csrf_token if user else "", "path": request.path}
            found = self._viewers[key] = (
                self._env.get_template("viewer.html").render(**context).encode()
            )
        return found

    async def status_fragment(self, request: web.Request) -> web.Response:
        """The live part of the status page (``#live``), for the page's script to swap in."""
        status = await self._service.status()

        async def render() -> cached.Rendered:
            return await cached.page_of([await self._live_html(status)])

        found = await self._cache.fetch(status.version, "status_live.html", render, status.epoch)
        return found.response(request)

    async def _live_html(self, status: StatusView) -> str:
        """The live part as every visitor gets it, rendered once per view for both the page
        and the fragment."""
        done = self._live
        if done is None or done[0] is not status:
            pieces = self.pieces("status_live.html", "/", view=status, banner=overall(status))
            done = self._live = (status, asyncio.ensure_future(cached.joined(pieces)))
        return await asyncio.shield(done[1])

    async def wall(self, request: web.Request) -> web.Response:
        """The wall screen: every user's every service, dense and readable at a distance."""
        return await self._cached_page(request, "wall.html", "/wall")

    async def wall_fragment(self, request: web.Request) -> web.Response:
        return await self._cached_page(request, "wall_live.html", "/wall")

    async def _cached_page(self, request: web.Request, template: str, path: str) -> web.Response:
        status = await self._service.status()

        async def render() -> cached.Rendered:
            return await cached.page_of(
                self.pieces(template, path, view=status, banner=overall(status))
            )

        found = await self._cache.fetch(status.version, template, render, status.epoch)
        return found.response(request)

    def pieces(self, template: str, path: str, **context: Any) -> Iterator[str]:
        """``template`` as every visitor gets it (no name, notice or nonce: cacheable), a
        piece at a time (for :func:`cached.page_of`)."""
        # Nobody's page: no name, no CSRF token; a page that shows who is looking has a
        # ``viewer_slot`` for :meth:`viewer`'s part, spliced in per request.
        context.update(actor="", error=None, form={}, notice=None, nonce="", path=path)
        context.update(user=None, csrf="", kiosk=context.get("kiosk", False))
        return self._env.get_template(template).generate(**context)

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
        user = principal_of(request)
        return self.render(
            request,
            "maintenance.html",
            status=status,
            windows=windows,
            maintainer=user is not None and user.may("maintainer"),
            customers=view.customers,
            now=view.generated_at,
            error=error,
            form=form or {},
        )

    async def schedule_maintenance(self, request: web.Request) -> web.Response:
        form = await request.post()
        typed = _window_typed(form)
        try:
            body = parse_form(MaintenanceBody, self._window_data(form))
            await self._service.schedule_maintenance(
                body.window(), actor_name(request), address=remote_address(request)
            )
        except ServiceError as exc:
            error = form_error(exc, MAINTENANCE_LABELS)
            return await self._maintenance_page(request, exc.status, error, typed)
        return _redirect("/maintenance?done=scheduled")

    async def maintenance_window(self, request: web.Request) -> web.Response:
        """One window: its history (who, when, why, what it was) and, while it is scheduled
        or running, the form that changes it (filled with the window as it is) and cancels it."""
        window_id = int(request.match_info["id"])
        try:
            window = await self._service.maintenance_window(window_id)
        except ServiceError as exc:
            return self.error_page(request, exc.status, exc.message)
        return await self._window_page(request, window, 200, None, self._window_form(window))

    async def change_maintenance(self, request: web.Request) -> web.Response:
        """The window becomes what the form says, judged by the same rules as a new one (the
        service's), kept with what it was, who and why."""
        window_id = int(request.match_info["id"])
        form = await request.post()
        typed = _window_typed(form)
        try:
            window = await self._service.maintenance_window(window_id)
        except ServiceError as exc:
            return self.error_page(request, exc.status, exc.message)
        try:
            data = self._window_data(form, as_it_was=self._window_form(window))
            body = parse_form(ChangeMaintenanceBody, {**data, "why": form.get("why", "")})
            await self._service.change_maintenance(
                window_id,
                body.window(),
                actor_name(request),
                body.why,
                address=remote_address(request),
            )
        except ServiceError as exc:
            if exc.status == 404:
                return self.error_page(request, 404, exc.message)
            error = form_error(exc, CHANGE_LABELS)
            return await self._window_page(request, window, exc.status, error, typed)
        return _redirect(f"/maintenance/{window_id}?done=changed")

    async def _window_page(
        self,
        request: web.Request,
        window: MaintenanceView,
        status: int,
        error: ServiceError | None,
        form: Mapping[str, Any],
    ) -> web.Response:
        view = await self._service.status()
        user = principal_of(request)
        return self.render(
            request,
            "maintenance_window.html",
            status=status,
            window=window,
            history=[
                {
                    "revision": h.revision,
                    "action": h.action,
                    "actor": h.actor,
                    "at": h.at,
                    "reason": h.reason,
                    "was": self._was(h.before),
                }
                for h in window.history
            ],
            changeable=window.state in ("scheduled", "active")
            and user is not None
            and user.may("maintainer"),
            customers=view.customers,
            error=error,
            form=form,
        )

    def _window_form(self, window: MaintenanceView) -> dict[str, Any]:
        """The change form filled with ``window`` as it is (local wall times)."""
        return {
            "start": _local_input(window.start, self._tz),
            "end": _local_input(window.end, self._tz),
            "services": list(window.services or ()),
            "customers": list(window.customers or ()),
            "locations": list(window.locations or ()),
            "recurrence": window.recurrence or "",
            "emergency": "on" if window.emergency else "",
            "justification": window.justification,
            "reason": window.reason,
            "_start": window.start,
            "_end": window.end,
        }

    def _window_data(
        self, form: MultiDictProxy[Any], as_it_was: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A window form's fields as :class:`MaintenanceBody` reads them. A time left as it
        was shown (minutes) keeps the window's own instant: a start given to the second by
        the API does not "move" because the form shows minutes."""
        times: dict[str, datetime] = {}
        for name in ("start", "end"):
            text = str(form.get(name, ""))
            if as_it_was is not None and text.strip() == as_it_was[name]:
                times[name] = as_it_was[f"_{name}"]
            else:
                times[name] = parse_local_time(text, name, self._tz)
        return {
            **times,
            "services": form.getall("services", []) or None,
            "customers": form.getall("customers", []) or None,
            "locations": form.getall("locations", []) or None,
            "reason": form.get("reason", ""),
            "recurrence": str(form.get("recurrence", "")).strip() or None,
            "emergency": "emergency" in form,
            "justification": form.get("justification", ""),
        }

    def _was(self, before: Mapping[str, Any] | None) -> str:
        """What a window was before a change, in words (its revision keeps it as JSON)."""
        if not before:
            return ""
        try:
            start = datetime.fromisoformat(str(before["start"])).astimezone(self._tz)
            end = datetime.fromisoformat(str(before["end"])).astimezone(self._tz)
        except (KeyError, ValueError):
            return ""
        services = ", ".join(service_name(s) for s in before.get("services") or ())
        parts = [
            f"{start:%a %d %b %Y %H:%M} – {end:%a %d %b %H:%M}",
            services or "all services",
            ", ".join(before.get("customers") or ()) or "all customers",
        ]
        if before.get("locations"):
            parts.append(", ".join(before["locations"]))
        if before.get("recurrence"):
            parts.append(f"repeats {before['recurrence']}")
        if before.get("emergency"):
            parts.append("emergency")
        return "; ".join(parts) + f": {before.get('reason', '')}"

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

    # --- reports -------------------------------------------------------------------------

    async def kpi(self, request: web.Request) -> web.Response:
        """The SLA KPI report of a month (default: the current one), per priority: the numbers
        of ``ctiwatch report kpi`` and ``GET /api/v1/reports/kpi``, and its CSV a click away."""
        asked = request.query.get("month") or None
        try:
            report = await self._service.kpi_report(asked)
        except ServiceError as exc:
            if exc.status != 400:
                raise
            shown = asked if asked is not None and len(asked) <= 7 else ""
            return self.render(
                request, "kpi.html", status=400, report=None, month=shown, error=exc,
                previous=None, following=None, target="",
            )  # fmt: skip
        month = report.month or ""
        return self.render(
            request,
            "kpi.html",
            report=report,
            month=month,
            previous=_step_month(month, -1),
            following=_step_month(month, +1),
            target=kpi_target_text(report.performance_target),
        )

    async def kpi_csv(self, request: web.Request) -> web.Response:
        """The report's CSV, as ``ctiwatch report kpi --format csv`` writes it."""
        report = await self._service.kpi_report(request.query.get("month") or None)
        name = f"ctiwatch-kpi-{report.month}.csv"
        return web.Response(
            text=kpi_csv(report.rows),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


def _step_month(month: str, step: int) -> str | None:
    """The month ``step`` months from ``month`` (``YYYY-MM``); None outside the years a month
    may name."""
    year, number = (int(part) for part in month.split("-"))
    index = year * 12 + number - 1 + step
    shifted = f"{index // 12:04d}-{index % 12 + 1:02d}"
    try:
        return parse_month(shifted)
    except MonthError:
        return None


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


def _window_typed(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """What was typed into a window form, to show it again with a refusal."""
    typed: dict[str, Any] = _strings(form)
    for name in ("services", "customers", "locations"):
        typed[name] = form.getall(name, [])
    return typed


def _local_input(at: datetime, tz: ZoneInfo) -> str:
    """``at`` as a ``datetime-local`` input shows it: local wall time to the minute."""
    return at.astimezone(tz).strftime("%Y-%m-%dT%H:%M")


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
