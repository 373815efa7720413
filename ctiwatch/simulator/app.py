"""The simulator as an aiohttp application: the CloudCTI routes plus the fault admin API."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ctiwatch.clock import Clock
from ctiwatch.config import ConfigError
from ctiwatch.simulator.core import SimulatorCore
from probes.base import HttpRequest, source_of


@dataclass(slots=True)
class _State:
    core: SimulatorCore
    clock: Clock
    rng: random.Random


STATE = web.AppKey("simulator", _State)


class _ConnectionRefused(Exception):
    """Raised by the API handler to drop the connection without an answer."""


def make_app(
    core: SimulatorCore,
    clock: Clock,
    rng: random.Random | None = None,
    *,
    admin_api: bool = True,
    admin_allowed: Callable[[web.Request], Awaitable[bool]] | None = None,
) -> web.Application:
    """The simulator app; ``rng`` decides which calls of a ``rate`` fault are hit.

    ``admin_api``: serve the fault admin API (``/admin/faults``); ``admin_allowed(request)``,
    when given, must say yes to every admin request (``ctiwatch run``: an admin's API token),
    else 401."""
    middlewares = [_refuse_middleware]
    if admin_allowed is not None:
        middlewares.append(_admin_guard(admin_allowed))
    app = web.Application(middlewares=middlewares)
    app[STATE] = _State(core, clock, rng if rng is not None else random.Random())
    if admin_api:
        app.router.add_post("/admin/faults", _add_fault)
        app.router.add_get("/admin/faults", _list_faults)
        app.router.add_delete("/admin/faults", _clear_faults)
        app.router.add_delete("/admin/faults/{fault_id}", _remove_fault)
    app.router.add_route("*", "/{tail:.*}", _api)
    return app


def _admin_guard(allowed: Callable[[web.Request], Awaitable[bool]]) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/admin/") and not await allowed(request):
            return web.json_response(
                {"errors": ["the simulator's admin API needs an admin's API token (Bearer)"]},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="ctiwatch"'},
            )
        response: web.StreamResponse = await handler(request)
        return response

    return guard


@web.middleware
async def _refuse_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except _ConnectionRefused:
        # The nearest an HTTP server gets to a refused connection: drop it, answer nothing.
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise web.HTTPServiceUnavailable() from None
    return response


async def _api(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    payload: Any = None
    if request.can_read_body:
        raw = await request.read()
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                return _errors(400, ["body: must be JSON"])
    http_request = HttpRequest(request.method, request.raw_path, request.headers, payload)
    # Probers name themselves in the User-Agent: a fault with ``sources`` hits only those.
    requester = source_of(request.headers.get("User-Agent"))
    reply = state.core.handle(http_request, state.clock.now(), state.rng, requester)
    if reply.latency > 0:
        await state.clock.sleep(reply.latency)
    if reply.response is None:
        raise _ConnectionRefused()
    answer = reply.response
    return web.Response(status=answer.status, body=answer.body, headers=dict(answer.headers))


async def _add_fault(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        data = json.loads(await request.read())
    except ValueError:
        return _errors(400, ["body: must be a JSON object"])
    try:
        fault = state.core.faults.add_from_data(data, state.clock.now(), state.core.places)
    except ConfigError as exc:
        return _errors(400, exc.errors)
    return web.json_response(fault.to_json(), status=201)


async def _list_faults(request: web.Request) -> web.Response:
    faults = request.app[STATE].core.faults
    return web.json_response({"faults": [fault.to_json() for fault in faults]})


async def _clear_faults(request: web.Request) -> web.Response:
    cleared = request.app[STATE].core.faults.clear()
    return web.json_response({"cleared": cleared})


async def _remove_fault(request: web.Request) -> web.Response:
    fault_id = request.match_info["fault_id"]
    if not request.app[STATE].core.faults.remove(fault_id):
        return _errors(404, [f"fault {fault_id!r} does not exist"])
    return web.Response(status=204)


def _errors(status: int, errors: list[str]) -> web.Response:
    return web.json_response({"errors": errors}, status=status)
