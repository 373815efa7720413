"""The web application: status page, operations console, JSON API, health and metrics.

Everything it shows or changes goes through one :class:`ConsoleService`; the app owns no state
of its own. Who may see and do what is :mod:`ctiwatch.web.auth`'s: every route but the few
public ones needs a login (pages) or an API token (``Authorization: Bearer``), and actions are
recorded under that user's or token's name.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import prometheus_client
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ctiwatch.accounts import Accounts
from ctiwatch.metrics import HttpMetrics
from ctiwatch.web.account_pages import AccountPages
from ctiwatch.web.api import Api, json_error
from ctiwatch.web.auth import AuthSettings, HostAllowList, auth_middleware
from ctiwatch.web.customer_pages import CustomerPageRoutes
from ctiwatch.web.customers import CustomerPages
from ctiwatch.web.events import EventStreams, Versions
from ctiwatch.web.pages import NONCE, Pages
from ctiwatch.web.render import build_environment
from ctiwatch.web.service import ConsoleService, ServiceError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


def build_web_app(
    service: ConsoleService,
    *,
    accounts: Accounts,
    metrics_registry: prometheus_client.CollectorRegistry | None,
    hosts: HostAllowList | None = None,
    https: bool = False,
    tz: str = "Europe/Amsterdam",
    extra_routes: Callable[[web.Application], None] | None = None,
    nav_links: Sequence[tuple[str, str]] = (),
    health: Callable[[], list[str]] | None = None,
    maintenance_notice: tuple[str, str] = ("48h", "24h"),
    versions: Versions | None = None,
    role: Callable[[], str] | None = None,
    customers: CustomerPages | None = None,
) -> web.Application:
    """The console over ``service``; ``/metrics`` exposes ``metrics_registry`` (with the
    web's own request metrics added to it) and is absent when it is None. ``nav_links``
    (label, path) are added to the header, e.g. the demo's fake phone and mailbox. ``/healthz``
    answers ``ok``, or 503 with the lines ``health()`` gives (components down). With
    ``versions`` (the pipeline's state version) ``/events`` streams its changes (SSE). With
    ``customers`` each customer's own page is at its link ``/status/<token>`` (and at
    ``/status/c/<id>`` when public), with its feeds.
    ``role()`` (several workers) is sent with ``/healthz`` as ``X-Ctiwatch-Role``: ``leader;
    generation=N``, ``follower`` or ``single``.

    ``accounts`` decides who is logged in; ``hosts`` is the Host allow-list (default:
    localhost, 127.0.0.1 and [::1] on any port); ``https`` adds the Secure cookie flag."""
    zone = ZoneInfo(tz)
    environment = build_environment(zone)
    environment.globals["nav_links"] = tuple(nav_links)
    # The maintenance rules in words: (minimum notice, reminder before the start).
    environment.globals["min_notice"], environment.globals["reminder"] = maintenance_notice
    pages = Pages(service, environment, zone)
    middlewares: list[Middleware] = []
    if metrics_registry is not None:
        middlewares.append(_metrics_middleware(metrics_registry))
    settings = AuthSettings(accounts, hosts or HostAllowList(), https)
    middlewares += [_headers_middleware, _errors_middleware(pages), auth_middleware(settings)]
    app = web.Application(middlewares=middlewares)
    app.add_routes(pages.routes())
    api = Api(service, zone)
    app.add_routes(api.routes())
    app.add_routes(AccountPages(settings, pages, api, service, zone).routes())
    if customers is not None:
        app.add_routes(CustomerPageRoutes(customers, service, environment, zone).routes())
    app.add_routes([web.get("/healthz", _healthz(health, role)), web.static("/static", STATIC)])
    if metrics_registry is not None:
        app.add_routes([web.get("/metrics", _metrics_handler(metrics_registry))])
    if versions is not None:
        EventStreams(versions).install(app)
        app.middlewares.append(_state_header(versions))
    if extra_routes is not None:
        extra_routes(app)
    return app


def _state_header(versions: Versions) -> Middleware:
    """Live fragments say the state version as of their answer (``X-Ctiwatch-State``): a
    polling page given a view older than that (new figures are built behind the view served)
    asks again soon, as a page listening to ``/events`` does for the version it heard."""

    @web.middleware
    async def state_header(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path.startswith("/fragments/") or request.path.endswith("/fragment"):
            response.headers["X-Ctiwatch-State"] = str(versions.value)
        return response

    return state_header


def _healthz(
    health: Callable[[], list[str]] | None, role: Callable[[], str] | None = None
) -> Handler:
    async def healthz(request: web.Request) -> web.Response:
        problems = health() if health is not None else []
        headers = {"X-Ctiwatch-Role": role()} if role is not None else None
        if problems:
            return web.Response(status=503, text="\n".join(problems), headers=headers)
        return web.Response(text="ok", headers=headers)

    return healthz


class _Collected:
    """Families already collected: what ``generate_latest`` formats, away from the loop."""

    def __init__(self, families: list[prometheus_client.Metric]) -> None:
        self._families = families

    def collect(self) -> list[prometheus_client.Metric]:
        return self._families


def _metrics_handler(registry: prometheus_client.CollectorRegistry) -> Handler:
    async def metrics(request: web.Request) -> web.Response:
        # The values are read on the loop (collectors read state the loop changes); the text,
        # most of a large scrape's cost, is written in a thread (docs/benchmarks.md).
        families = list(registry.collect())
        body = await asyncio.to_thread(
            prometheus_client.generate_latest,
            _Collected(families),
        )
        return web.Response(
            body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
        )

    return metrics


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _errors_middleware(pages: Pages) -> Middleware:
    """Every failure is a clean answer: JSON under /api/, a page elsewhere; never a traceback."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ServiceError as exc:
            if _is_api(request) or request.path == "/metrics":
                response = json_error(exc.status, exc.message, exc.field)
            else:
                response = pages.error_page(request, exc.status, exc.message)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="ctiwatch"'
            if exc.retry_after is not None:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = {404: "not found", 405: "method not allowed"}.get(exc.status, exc.reason)
            if _is_api(request):
                return json_error(exc.status, message)
            return pages.error_page(request, exc.status, message.capitalize() + ".")
        except Exception:
            log.exception("web: %s %s failed", request.method, request.path)
            if _is_api(request):
                return json_error(500, "internal error")
            return pages.error_page(request, 500, "Something went wrong; it has been logged.")

    return errors


@web.middleware
async def _headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    nonce = secrets.token_urlsafe(16)
    request[NONCE] = nonce
    response = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'self'; "
        "connect-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _metrics_middleware(registry: prometheus_client.CollectorRegistry) -> Middleware:
    http = HttpMetrics.of(registry)
    requests, latency = http.requests, http.latency

    @web.middleware
    async def metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
        # A resource's pattern, never the raw path: label values must stay few.
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            requests.labels(request.method, route, str(status)).inc()
            latency.labels(request.method, route).observe(time.perf_counter() - started)

    return metrics
