"""The customers' own status pages: ``/status/<token>`` (the customer's link, made by
``ctiwatch customers link``) and, where config says ``public: true``, ``/status/c/<customer>``.

Under each the customer's feeds: ``maintenance.ics`` (iCalendar) and ``feed.atom`` (maintenance
and incident history). An unknown or rotated token, and the plain address of a customer that is
not public, answer 404 like any other missing page (they say nothing of which customers exist).
A page is rendered once per change of what it shows (:attr:`CustomerPageView.key`) and served
as stored bytes until the next one.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from ctiwatch.web import readmodel as cached
from ctiwatch.web.customers import CustomerPages, CustomerPageView
from ctiwatch.web.feeds import CustomerFeeds
from ctiwatch.web.service import ConsoleService

TOKEN = r"{token:[A-Za-z0-9_-]{20,100}}"
CUSTOMER = r"{customer:[A-Za-z0-9_.-]{1,64}}"
_CACHED = 256  # rendered customer pages kept (a page per customer)


class CustomerPageRoutes:
    def __init__(
        self,
        pages: CustomerPages,
        service: ConsoleService,
        env: jinja2.Environment,
        tz: ZoneInfo,
    ) -> None:
        self._pages = pages
        self._env = env
        self._feeds = CustomerFeeds(service, tz)
        self._rendered: dict[tuple[str, str], tuple[tuple[object, ...], cached.Rendered]] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"/status/c/{CUSTOMER}", self.public_page),
            web.get(f"/status/c/{CUSTOMER}/maintenance.ics", self.public_calendar),
            web.get(f"/status/c/{CUSTOMER}/feed.atom", self.public_history),
            web.get(f"/status/{TOKEN}", self.linked_page),
            web.get(f"/status/{TOKEN}/maintenance.ics", self.linked_calendar),
            web.get(f"/status/{TOKEN}/feed.atom", self.linked_history),
        ]

    # --- who is asked for -----------------------------------------------------------------------

    async def _linked(self, request: web.Request) -> str:
        customer = await self._pages.customer_for_token(request.match_info["token"])
        if customer is None:
            raise web.HTTPNotFound()
        return customer

    def _public(self, request: web.Request) -> str:
        customer = request.match_info["customer"]
        if not self._pages.is_public(customer):
            raise web.HTTPNotFound()
        return customer

    # --- pages ----------------------------------------------------------------------------------

    async def linked_page(self, request: web.Request) -> web.Response:
        customer = await self._linked(request)
        base = f"/status/{request.match_info['token']}"
        return await self._page(request, customer, base)

    async def public_page(self, request: web.Request) -> web.Response:
        customer = self._public(request)
        return await self._page(request, customer, f"/status/c/{customer}")

    async def _page(self, request: web.Request, customer: str, base: str) -> web.Response:
        view = await self._pages.page(customer)
        found = self._rendered.get((customer, base))
        if found is None or found[0] != view.key:
            if len(self._rendered) >= _CACHED:
                self._rendered.clear()
            found = (view.key, cached.page(self._render(view, base)))
            self._rendered[(customer, base)] = found
        response = found[1].response(request)
        # The link is the credential: keep it out of other sites' Referer headers and caches.
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
        return response

    def _render(self, view: CustomerPageView, base: str) -> str:
        return self._env.get_template("customer.html").render(
            view=view, base=base, nonce="", path=base
        )

    # --- feeds ----------------------------------------------------------------------------------

    async def linked_calendar(self, request: web.Request) -> web.Response:
        return await self._feeds.calendar(await self._linked(request))

    async def linked_history(self, request: web.Request) -> web.Response:
        return await self._feeds.history(await self._linked(request), request)

    async def public_calendar(self, request: web.Request) -> web.Response:
        return await self._feeds.calendar(self._public(request))

    async def public_history(self, request: web.Request) -> web.Response:
        return await self._feeds.history(self._public(request), request)
