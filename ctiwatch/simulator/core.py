"""The simulated CloudCTI API as a pure function: request + now + rng -> latency + answer.

The aiohttp app (:mod:`ctiwatch.simulator.app`) and the in-memory transport that ``simulate``
uses (:mod:`ctiwatch.simulator.transport`) both call :meth:`SimulatorCore.handle`, so they
serve exactly the same routes and JSON; only how the latency is spent differs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from classifier.observation import Service
from ctiwatch.config import Config, CustomerConfig
from ctiwatch.simulator.faults import FaultPlan, Outcome
from probes.base import HttpRequest, HttpResponse

DEFAULT_NUMBER = "+31201234567"
DEFAULT_CONTACT = "ctiwatch test contact"
_JSON = MappingProxyType({"Content-Type": "application/json"})
_CACHE_LIMIT = 65_536
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SimUser:
    """A test user the simulated platform knows, and the CRM contact behind its number."""

    customer: str
    location: str
    user: str
    caller_number: str = DEFAULT_NUMBER
    expected_contact: str = DEFAULT_CONTACT


class Reply(NamedTuple):
    latency: float  # seconds to wait before answering
    response: HttpResponse | None  # None: the connection is refused


@dataclass(frozen=True, slots=True)
class _Route:
    service: Service | None  # None: /health
    customer: str
    location: str
    user: str
    number: str  # from the query (recognition); click2dial's comes in the body
    known: bool = True  # the simulated platform knows the user


def _answer(status: int, payload: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(payload, separators=(",", ":")).encode(), _JSON)


def _call_tail(number: str, name: str | None) -> bytes:
    """Everything of a call's answer after its id: the same for every call to ``number``."""
    contact = {"name": name, "number": number} if name is not None else None
    rest = {"state": "ringing", "number": number, "contact": contact}
    return b"," + json.dumps(rest, separators=(",", ":")).encode()[1:]


_UNAUTHORIZED = _answer(401, {"error": "missing or invalid bearer token"})
_NOT_FOUND = _answer(404, {"error": "no such route"})
_UNAVAILABLE = _answer(503, {"error": "service unavailable"})
_HEALTH = _answer(200, {"status": "ok"})


class SimulatorCore:
    """What the simulated platform knows (users, CRM contacts) and the faults in force.

    ``users=None`` is open mode: any customer, location and user exists, and every CRM knows
    the default test number. Otherwise unknown users get 404 and each customer's CRM knows the
    numbers of its own users.
    """

    def __init__(
        self,
        api_token: str,
        users: Iterable[SimUser] | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.faults = faults if faults is not None else FaultPlan()
        self._auth = f"Bearer {api_token}"
        self._users: frozenset[tuple[str, str, str]] | None = None
        self._contacts: dict[str, dict[str, str]] = {}
        self._default_contacts: Mapping[str, str] = {DEFAULT_NUMBER: DEFAULT_CONTACT}
        if users is not None:
            known = set()
            for sim_user in users:
                known.add((sim_user.customer, sim_user.location, sim_user.user))
                book = self._contacts.setdefault(sim_user.customer, {})
                book[_normal(sim_user.caller_number)] = sim_user.expected_contact
            self._users = frozenset(known)
            self._default_contacts = {}
        self._routes: dict[tuple[str, str], _Route | None] = {}
        self._call_tails: dict[tuple[str, str | None], bytes] = {}
        self._lookups: dict[tuple[str, str | None], HttpResponse] = {}
        self._names: dict[tuple[str, str], str | None] = {}
        self._calls = 0

    @classmethod
    def from_config(cls, config: Config) -> SimulatorCore:
        """The configured topology's users (open mode when the topology is empty)."""
        customers = config.topology.customers
        users = users_from_topology(customers) if customers else None
        return cls(config.probes.api_token, users)

    @property
    def places(self) -> frozenset[tuple[str, str, str]] | None:
        """The (customer, location, user) triples it knows; None in open mode."""
        return self._users

    def handle(
        self, request: HttpRequest, now: datetime, rng: random.Random, source: str = "central"
    ) -> Reply:
        route = self._route(request.method, request.url)
        if route is None:
            return Reply(0.0, _NOT_FOUND)
        service = route.service
        if service is None:
            return Reply(0.0, _HEALTH)
        headers = request.headers
        auth = headers.get("Authorization")
        if auth is None:
            auth = headers.get("authorization")
        if auth != self._auth:
            return Reply(0.0, _UNAUTHORIZED)
        customer, location, user = route.customer, route.location, route.user
        if not route.known:
            return Reply(0.0, _answer(404, {"error": f"unknown user {customer}/{location}/{user}"}))
        if service is Service.CLICK2DIAL:
            body = request.json
            number = body.get("number") if isinstance(body, dict) else None
            if not isinstance(number, str) or not number:
                return Reply(0.0, _answer(400, {"error": "number: is required"}))
        else:
            number = route.number
            if not number:
                return Reply(0.0, _answer(400, {"error": "number: query parameter is required"}))
        behaviour = self.faults.decide(service, customer, location, user, now, rng, source)
        if behaviour.outcome is Outcome.REFUSED:
            return Reply(0.0, None)
        if behaviour.outcome is Outcome.ERROR:
            return Reply(behaviour.latency, _UNAVAILABLE)
        name = self._lookup(customer, number) if behaviour.recognised else None
        if service is Service.CLICK2DIAL:
            self._calls += 1
            tail = self._call_tails.get((number, name))
            if tail is None:
                tail = self._cache(self._call_tails, (number, name), _call_tail(number, name))
            body = b'{"call_id":"call-%06d"' % self._calls + tail
            return Reply(behaviour.latency, HttpResponse(201, body, _JSON))
        answer = self._lookups.get((number, name))
        if answer is None:
            contacts = [{"name": name, "number": number}] if name is not None else []
            payload = {"number": number, "contacts": contacts}
            answer = self._cache(self._lookups, (number, name), _answer(200, payload))
        return Reply(behaviour.latency, answer)

    @staticmethod
    def _cache(cache: dict[Any, _T], key: Any, value: _T) -> _T:
        # The answers are immutable and few (one or two per number); bounded all the same.
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = value
        return value

    def _lookup(self, customer: str, number: str) -> str | None:
        key = (customer, number)
        try:
            return self._names[key]
        except KeyError:
            pass
        book = self._contacts.get(customer, self._default_contacts)
        return self._cache(self._names, key, book.get(_normal(number)))

    def _route(self, method: str, url: str) -> _Route | None:
        key = (method, url)
        try:
            return self._routes[key]
        except KeyError:
            pass
        route = _parse_route(method, url)
        if (
            route is not None
            and route.service is not None
            and self._users is not None
            and (route.customer, route.location, route.user) not in self._users
        ):
            route = replace(route, known=False)
        return self._cache(self._routes, key, route)


def _normal(number: str) -> str:
    return number.replace(" ", "").replace("-", "")


def _parse_route(method: str, url: str) -> _Route | None:
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.strip("/").split("/")]
    if method == "GET" and segments == ["health"]:
        return _Route(None, "", "", "", "")
    if len(segments) < 6 or segments[:2] != ["api", "v1"]:
        return None
    customer, location, user = segments[3:6]
    if method == "POST" and segments[2] == "click2dial" and segments[6:] == ["calls"]:
        return _Route(Service.CLICK2DIAL, customer, location, user, "")
    if method == "GET" and segments[2] == "recognition" and len(segments) == 6:
        number = parse_qs(parts.query).get("number", [""])[0]
        if number.startswith(" "):  # an unescaped "+" in a query string reads as a space
            number = "+" + number[1:]
        return _Route(Service.CRM, customer, location, user, number)
    return None


def users_from_topology(customers: Iterable[CustomerConfig]) -> list[SimUser]:
    """The simulator's users from config-shaped customers (``topology.customers``)."""
    return [
        SimUser(c.id, loc.id, u.id, u.caller_number, u.expected_contact)
        for c in customers
        for loc in c.locations
        for u in loc.users
    ]
