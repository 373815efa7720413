"""Feeds per customer: the maintenance and incident history as Atom, the maintenance windows as
iCalendar (RFC 5545, written by ``icalendar``). Both hold only what concerns that customer: the
windows that cover it (emergencies with their justification, cancelled ones marked so) and its
own incidents (title, priority, state, times; never another customer's or internal evidence).

They are served under the customer's status page (``/status/<token>/maintenance.ics`` and
``/status/<token>/feed.atom``, :mod:`ctiwatch.web.customer_pages`): :class:`CustomerFeeds`
answers for a customer id the page's route has already resolved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import icalendar
import jinja2
from aiohttp import web

from ctiwatch.web.service import (
    ConsoleService,
    CustomerStatus,
    IncidentSummary,
    MaintenanceView,
    ServiceError,
)
from sla.words import service_name

HISTORY_LIMIT = 200  # incidents in the Atom feed

_ATOM = jinja2.Environment(autoescape=True).from_string(
    """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>urn:ctiwatch:feeds:{{ customer.id }}:history</id>
  <title>{{ customer.name or customer.id }}: maintenance and incidents</title>
  <updated>{{ updated }}</updated>
  <link rel="self" href="{{ self_url }}"/>
  {%- for e in entries %}
  <entry>
    <id>{{ e.id }}</id>
    <title>{{ e.title }}</title>
    <updated>{{ e.updated }}</updated>
    <author><name>CloudCTI</name></author>
    <content type="text">{{ e.text }}</content>
  </entry>
  {%- endfor %}
</feed>
"""
)


def covers_customer(window: MaintenanceView, customer: CustomerStatus) -> bool:
    if window.customers is not None and customer.id not in window.customers:
        return False
    mine = {location.id for location in customer.locations}
    return window.locations is None or bool(mine & set(window.locations))


class CustomerFeeds:
    def __init__(self, service: ConsoleService, tz: ZoneInfo) -> None:
        self._service = service
        self._tz = tz

    async def _customer(self, wanted: str) -> tuple[CustomerStatus, datetime]:
        status = await self._service.status()
        for customer in status.customers:
            if customer.id == wanted:
                return customer, status.generated_at
        raise ServiceError(f"unknown customer {wanted!r}", None, 404)

    async def _windows(self, customer: CustomerStatus) -> list[MaintenanceView]:
        return [w for w in await self._service.maintenance() if covers_customer(w, customer)]

    async def calendar(self, wanted: str) -> web.Response:
        customer, now = await self._customer(wanted)
        cal = icalendar.Calendar()
        cal.add("prodid", "-//ctiwatch//maintenance//EN")
        cal.add("version", "2.0")
        cal.add("x-wr-calname", f"{customer.name or customer.id}: maintenance")
        for window in await self._windows(customer):
            spans = window.occurrences or ((window.start, window.end),)
            for index, (start, end) in enumerate(spans):
                event = icalendar.Event()
                event.add("uid", f"maintenance-{window.id}-{index}@ctiwatch")
                event.add("dtstamp", now.astimezone(UTC))
                event.add("dtstart", start.astimezone(UTC))
                event.add("dtend", end.astimezone(UTC))
                event.add("sequence", window.revision)
                event.add("summary", _summary(window))
                event.add("description", _description(window))
                event.add("status", "CANCELLED" if window.state == "cancelled" else "CONFIRMED")
                cal.add_component(event)
        return web.Response(body=cal.to_ical(), content_type="text/calendar", charset="utf-8")

    async def history(self, wanted: str, request: web.Request) -> web.Response:
        customer, now = await self._customer(wanted)
        entries: list[dict[str, str]] = []
        for window in await self._windows(customer):
            changed = window.history[-1].at if window.history else window.start
            entries.append(
                {
                    "id": f"urn:ctiwatch:maintenance:{window.id}:r{window.revision}",
                    "title": f"{_summary(window)} ({window.state})",
                    "updated": _iso(changed),
                    "text": _description(window),
                    "sort": _iso(changed),
                }
            )
        incidents = await self._service.incidents(None, customer.id, HISTORY_LIMIT)
        entries += [_incident_entry(incident, self._tz) for incident in incidents]
        entries.sort(key=lambda e: e["sort"], reverse=True)
        body = _ATOM.render(
            customer=customer,
            updated=entries[0]["updated"] if entries else _iso(now),
            entries=entries,
            self_url=str(request.url),
        )
        return web.Response(text=body, content_type="application/atom+xml", charset="utf-8")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(window: MaintenanceView) -> str:
    services = ", ".join(service_name(s) for s in window.services or ()) or "every service"
    kind = "Emergency maintenance" if window.emergency else "Maintenance"
    return f"{kind}: {window.reason} ({services})"


def _description(window: MaintenanceView) -> str:
    lines = [window.reason]
    if window.emergency:
        lines.append(
            "Emergency: exempt from the notice period and the outside-support-hours rule. "
            f"Justification: {window.justification}"
        )
    if window.recurrence:
        lines.append(f"Repeats: {window.recurrence}")
    if window.state == "cancelled":
        lines.append("Cancelled.")
    return "\n".join(lines)


def _incident_entry(incident: IncidentSummary, tz: ZoneInfo) -> dict[str, str]:
    at = incident.resolved_at or incident.opened_at
    opened = incident.opened_at.astimezone(tz)
    text = f"P{incident.priority}, opened {opened:%a %d %b %Y %H:%M %Z}"
    if incident.resolved_at is not None:
        text += f", resolved {incident.resolved_at.astimezone(tz):%a %d %b %Y %H:%M %Z}"
    return {
        "id": f"urn:ctiwatch:incident:{incident.number}:{incident.status}",
        "title": f"Incident {incident.number}: {incident.title} ({incident.status})",
        "updated": _iso(at),
        "text": text,
        "sort": _iso(at),
    }
