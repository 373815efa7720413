"""Who may do what on the web: the Host allow-list, logins, sessions, API tokens, CSRF, roles.

One middleware (:func:`auth_middleware`) runs on every request, in this order:

1. the ``Host`` header must be on the allow-list (``web.hosts``), else 421 — a page reached
   through another name (DNS rebinding) gets nothing;
2. who is asking: ``Authorization: Bearer <token>`` (a bad or revoked token is 401), else the
   session cookie (an unknown or expired one counts as nobody);
3. a state-changing request from another site is refused (403): ``Sec-Fetch-Site:
   cross-site``, or an ``Origin`` whose host is not on the allow-list;
4. the route's required role (:data:`RULES`; public routes need none): nobody gets 401 on
   the API, a redirect to the login page for a page, 403 for a form post; too low a role 403;
5. a state-changing request made with the session cookie must carry the session's CSRF token
   (form field ``csrf_token`` or header ``X-CSRF-Token``), else 403. API tokens are not
   ambient credentials and need none.

Roles: ``viewer`` reads; ``oncall`` acknowledges, updates, resolves and opens questions;
``maintainer`` schedules and cancels maintenance; ``admin`` manages users and tokens, reads the
audit log and sees the demo fakes.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ctiwatch.accounts import Accounts, LookupUnavailable, Principal, at_least
from ctiwatch.web.service import ServiceError

log = logging.getLogger("ctiwatch.web.auth")

SESSION_COOKIE = "ctiwatch_session"
LOGIN_COOKIE = "ctiwatch_login"  # the login form's CSRF token (double submit): no session yet
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
PRINCIPAL = web.RequestKey("principal", Principal)
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")

PUBLIC = "public"

# (methods, canonical route pattern, role): the first match decides. Public routes need no
# login: health, static files, the login page, the kiosk link (its token is in the path), the
# customers' own pages (their link token in the path) and the Twilio webhooks (signed).
# Everything else needs a login or a token.
RULES: tuple[tuple[frozenset[str], re.Pattern[str], str], ...] = tuple(
    (frozenset(methods.split()), re.compile(pattern), role)
    for methods, pattern, role in (
        ("GET HEAD", r"/healthz", PUBLIC),
        ("GET HEAD", r"/static(/.*)?", PUBLIC),
        ("GET HEAD POST", r"/login", PUBLIC),
        ("GET HEAD", r"/kiosk/\{token\}(/status\.json|/fragment)?", PUBLIC),
        ("POST", r"/twilio/.*", PUBLIC),
        # A customer's own page and feeds: its link token is in the path (or it is public).
        (
            "GET HEAD",
            r"/status/(c/\{customer\}|\{token\})(/feed\.atom|/maintenance\.ics)?",
            PUBLIC,
        ),
        ("POST", r"/logout", "viewer"),
        # The API's OpenAPI document: like every API route, for a token (any role).
        ("GET HEAD", r"/api/v1/openapi\.json", "viewer"),
        ("GET HEAD POST", r"/fakes(/.*)?", "admin"),
        ("GET HEAD POST", r"(/api/v1)?/audit", "admin"),
        ("GET HEAD POST", r"(/api/v1)?/admin(/.*)?", "admin"),
        ("POST", r"(/api/v1)?/incidents/.*", "oncall"),
        ("POST", r"/api/v1/questions", "oncall"),
        ("POST", r"(/api/v1)?/maintenance(/.*)?", "maintainer"),
        ("GET HEAD", r".*", "viewer"),
    )
)
DEFAULT_UNSAFE_ROLE = "admin"  # a state-changing route no rule names: admins only


def required_role(method: str, path: str) -> str:
    """The role ``method`` on the route ``path`` (its canonical pattern) needs, or ``public``."""
    for methods, pattern, role in RULES:
        if method in methods and pattern.fullmatch(path):
            return role
    return DEFAULT_UNSAFE_ROLE if method in _UNSAFE else "viewer"


def route_path(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


# --- the Host allow-list ------------------------------------------------------------------------


def default_hosts(port: int) -> list[str]:
    return [f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"]


class HostAllowList:
    """Host headers the console answers to: ``name`` (any port) or ``name:port``. ``None``
    entries: localhost, 127.0.0.1 and [::1] on any port (the tests' servers)."""

    def __init__(self, hosts: Iterable[str] | None = None) -> None:
        self.set(hosts)

    def set(self, hosts: Iterable[str] | None) -> None:
        entries = list(hosts) if hosts is not None else ["localhost", "127.0.0.1", "[::1]"]
        self._exact = {h.lower() for h in entries if _split(h)[1] is not None}
        self._any_port = {h.lower() for h in entries if _split(h)[1] is None}
        self.entries = entries

    def allows(self, host: str) -> bool:
        name, port = _split(host.strip().lower())
        if not name:
            return False
        if port is None:
            return name in self._any_port
        return f"{name}:{port}" in self._exact or name in self._any_port


def _split(host: str) -> tuple[str, str | None]:
    """``("name", "port" | None)``; an IPv6 literal keeps its brackets."""
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return "", None
        rest = host[end + 1 :]
        return host[: end + 1], rest[1:] if rest.startswith(":") and rest[1:].isdigit() else None
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        return name, port
    return host, None


def _origin_host(origin: str) -> str | None:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc


# --- the middleware -----------------------------------------------------------------------------


@dataclass
class AuthSettings:
    accounts: Accounts
    hosts: HostAllowList
    https: bool = False


def remote_address(request: web.Request) -> str:
    return request.remote or ""


def principal_of(request: web.Request) -> Principal | None:
    return request.get(PRINCIPAL)


def actor_name(request: web.Request) -> str:
    """The name actions are recorded under: the logged-in user's or the token's."""
    principal = principal_of(request)
    if principal is None:  # the middleware lets no one act anonymously
        raise ServiceError("log in first", None, 401)
    return principal.name


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _refuse(request: web.Request, status: int, message: str) -> ServiceError:
    return ServiceError(message, None, status)


def auth_middleware(settings: AuthSettings) -> Middleware:
    accounts = settings.accounts

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await checked(request, handler)
        except LookupUnavailable:
            if required_role(request.method, route_path(request)) == PUBLIC:
                return await handler(request)  # nobody needed: public pages work on
            raise ServiceError(
                "the database is not reachable, so the login cannot be checked; try again "
                "in a moment",
                None,
                503,
            ) from None

    async def checked(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not settings.hosts.allows(request.host):
            log.warning("refused a request for host %r", request.host[:100])
            raise _refuse(request, 421, f"this server does not answer for {request.host[:100]!r}")
        principal: Principal | None = None
        authorization = request.headers.get("Authorization", "")
        if authorization:
            scheme, _, secret = authorization.partition(" ")
            token = await accounts.token(secret.strip()) if scheme.lower() == "bearer" else None
            if token is None:
                raise _unauthorized(request, "the API token is not valid (unknown or revoked)")
            principal = Principal(token.name, token.role, "token")
        else:
            cookie = request.cookies.get(SESSION_COOKIE, "")
            session = await accounts.session(cookie) if cookie else None
            if session is not None:
                principal = Principal(
                    session.user.username,
                    session.user.role,
                    "session",
                    csrf_token=session.csrf_token,
                    session_hash=session.id_hash,
                )
        if principal is not None:
            request[PRINCIPAL] = principal
        unsafe = request.method in _UNSAFE
        if unsafe:
            origin = request.headers.get("Origin")
            cross_site = request.headers.get("Sec-Fetch-Site") == "cross-site"
            if origin is not None and origin != "null":
                host = _origin_host(origin)
                cross_site = cross_site or host is None or not settings.hosts.allows(host)
            if cross_site:
                raise _refuse(request, 403, "cross-site request refused")
        needed = required_role(request.method, route_path(request))
        if needed != PUBLIC:
            if principal is None:
                if _is_api(request) or request.path == "/metrics":
                    raise _unauthorized(request, "log in or send an API token (Bearer)")
                if unsafe:
                    raise _refuse(request, 403, "log in first")
                target = request.path_qs
                raise web.HTTPSeeOther(f"/login?next={quote(target, safe='')}")
            if not at_least(principal.role, needed):
                raise _refuse(
                    request,
                    403,
                    f"{principal.name} ({principal.role}) may not do this: {needed} or higher only",
                )
            if unsafe and principal.kind == "session":
                await _check_csrf(request, principal.csrf_token)
        return await handler(request)

    return auth


def _unauthorized(request: web.Request, message: str) -> ServiceError:
    error = ServiceError(message, None, 401)
    return error


async def _check_csrf(request: web.Request, expected: str) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent and request.content_type in _FORMS:
        form = await request.post()
        value = form.get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    if not sent or not hmac.compare_digest(sent, expected):
        log.warning("refused a request without its CSRF token", extra={"path": request.path})
        raise ServiceError(
            "the form has expired or did not come from this site (CSRF token missing or wrong); "
            "reload the page and try again",
            None,
            403,
        )


# --- login and logout ---------------------------------------------------------------------------


def set_cookie(
    response: web.StreamResponse, name: str, value: str, *, https: bool, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=https or None,
    )


def safe_next(target: str) -> str:
    """Where to go after logging in: a path on this site only."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def new_login_token() -> str:
    return secrets.token_urlsafe(24)
