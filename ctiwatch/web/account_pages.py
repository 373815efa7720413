"""The login page, logout, the audit log (page and API), the admin page and the kiosk link."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from ctiwatch.accounts import ROLES, AccountError, Accounts, AuditEntry, LoginRefused
from ctiwatch.web.api import Api
from ctiwatch.web.auth import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    AuthSettings,
    actor_name,
    new_login_token,
    principal_of,
    remote_address,
    safe_next,
    set_cookie,
)
from ctiwatch.web.inputs import check_query, parse_limit
from ctiwatch.web.openapi import Param, operation
from ctiwatch.web.pages import Pages
from ctiwatch.web.render import jsonable, overall
from ctiwatch.web.service import ConsoleService, ServiceError

log = logging.getLogger("ctiwatch.web.auth")

_LOGIN_FORM_AGE = 3600


@dataclass(frozen=True, slots=True)
class AuditList:
    audit: tuple[AuditEntry, ...]  # newest first


class AccountPages:
    def __init__(
        self,
        settings: AuthSettings,
        pages: Pages,
        api: Api,
        service: ConsoleService,
        tz: ZoneInfo,
    ) -> None:
        self._settings = settings
        self._accounts: Accounts = settings.accounts
        self._pages = pages
        self._api = api
        self._service = service
        self._tz = tz

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/login", self.login_form),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.get("/audit", self.audit_page),
            web.get("/api/v1/audit", self.audit_api),
            web.get("/admin", self.admin_page),
            web.post("/admin/tokens", self.create_token),
            web.post(r"/admin/tokens/{id:\d{1,9}}/revoke", self.revoke_token),
            web.get("/kiosk/{token}", self.kiosk_page),
            web.get("/kiosk/{token}/status.json", self.kiosk_status),
            web.get("/kiosk/{token}/fragment", self.kiosk_fragment),
        ]

    # --- login -------------------------------------------------------------------------------

    def _login_page(
        self,
        request: web.Request,
        status: int = 200,
        error: ServiceError | None = None,
        username: str = "",
        next_path: str = "/",
    ) -> web.Response:
        token = new_login_token()
        response = self._pages.render(
            request,
            "login.html",
            status=status,
            error=error,
            username=username,
            next=next_path,
            login_token=token,
        )
        set_cookie(
            response, LOGIN_COOKIE, token, https=self._settings.https, max_age=_LOGIN_FORM_AGE
        )
        return response

    async def login_form(self, request: web.Request) -> web.Response:
        if principal_of(request) is not None:
            raise web.HTTPSeeOther(safe_next(request.query.get("next", "/")))
        return self._login_page(request, next_path=safe_next(request.query.get("next", "/")))

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        username = str(form.get("username", ""))[:64]
        password = str(form.get("password", ""))
        next_path = safe_next(str(form.get("next", "/")))
        sent = str(form.get(CSRF_FIELD, ""))
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not sent or not expected or not hmac.compare_digest(sent, expected):
            error = ServiceError(
                "The login form has expired or did not come from this site; try again.", None, 403
            )
            return self._login_page(request, 403, error, username, next_path)
        try:
            secret, session = await self._accounts.login(
                username, password, remote_address(request)
            )
        except LoginRefused as exc:
            response = self._login_page(
                request, exc.status, ServiceError(exc.message, None, exc.status), username,
                next_path,
            )  # fmt: skip
            if exc.retry_after:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        response = web.Response(status=303, headers={"Location": next_path})
        max_age = int(self._accounts.session_lifetime.total_seconds())
        set_cookie(response, SESSION_COOKIE, secret, https=self._settings.https, max_age=max_age)
        response.del_cookie(LOGIN_COOKIE, path="/")
        log.info("logged in", extra={"user": session.user.username})
        return response

    async def logout(self, request: web.Request) -> web.Response:
        secret = request.cookies.get(SESSION_COOKIE, "")
        session = await self._accounts.session(secret) if secret else None
        if session is not None:
            await self._accounts.logout(session, remote_address(request))
        response = web.Response(status=303, headers={"Location": "/login"})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # --- audit -------------------------------------------------------------------------------

    async def audit_page(self, request: web.Request) -> web.Response:
        limit = parse_limit(request.query.get("limit"), default=200, maximum=1000)
        entries = await self._accounts.audit_log(limit, request.query.get("actor") or None)
        return self._pages.render(request, "audit.html", entries=entries)

    @operation(
        summary="The audit log, newest first: who did what, when and from where",
        response=AuditList,
        params=(
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            Param("actor", "query", {"type": "string"}, "Only this user's or token's lines"),
        ),
    )
    async def audit_api(self, request: web.Request) -> web.Response:
        check_query(request.query, ("limit", "actor"))
        limit = parse_limit(request.query.get("limit"), default=200, maximum=1000)
        entries = await self._accounts.audit_log(limit, request.query.get("actor") or None)
        return web.json_response(jsonable(AuditList(tuple(entries)), self._tz))

    # --- admin -------------------------------------------------------------------------------

    async def _admin(self, request: web.Request, status: int = 200, **context: Any) -> web.Response:
        context.setdefault("created", None)
        context.setdefault("secret", "")
        return self._pages.render(
            request,
            "admin.html",
            status=status,
            users=await self._accounts.users(),
            tokens=await self._accounts.tokens(),
            roles=ROLES,
            **context,
        )

    async def admin_page(self, request: web.Request) -> web.Response:
        return await self._admin(request)

    async def create_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            secret, record = await self._accounts.create_token(
                str(form.get("name", "")),
                str(form.get("role", "viewer")),
                kiosk=form.get("kiosk") in ("1", "on", "true"),
                by=actor_name(request),
                address=remote_address(request),
            )
        except AccountError as exc:
            return await self._admin(request, 400, error=ServiceError(exc.message, exc.field))
        # Shown once, on this answer only (no redirect: the secret must not be in a URL).
        return await self._admin(request, 201, created=record, secret=secret)

    async def revoke_token(self, request: web.Request) -> web.Response:
        token_id = int(request.match_info["id"])
        found = [t for t in await self._accounts.tokens() if t.id == token_id]
        if not found:
            raise ServiceError(f"token {token_id} does not exist", None, 404)
        await self._accounts.revoke_token(
            found[0].name, by=actor_name(request), address=remote_address(request)
        )
        raise web.HTTPSeeOther("/admin")

    # --- kiosk -------------------------------------------------------------------------------

    async def _kiosk_token(self, request: web.Request) -> str:
        secret = request.match_info["token"]
        token = await self._accounts.token(secret)
        if token is None or not token.kiosk:
            raise ServiceError("this kiosk link is not valid (unknown or revoked)", None, 404)
        return secret

    async def kiosk_page(self, request: web.Request) -> web.Response:
        secret = await self._kiosk_token(request)
        status = await self._service.status()
        response = self._pages.render(
            request,
            "status.html",
            view=status,
            banner=overall(status),
            kiosk=True,
            status_fragment=f"/kiosk/{secret}/fragment",
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def kiosk_fragment(self, request: web.Request) -> web.Response:
        await self._kiosk_token(request)
        return await self._pages.status_fragment(request)

    async def kiosk_status(self, request: web.Request) -> web.Response:
        await self._kiosk_token(request)
        return await self._api.status(request)  # the API's, rendered once per view
