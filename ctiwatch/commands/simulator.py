"""``simulator serve`` (the fake CloudCTI, standalone) and ``simulator fault|faults|clear``,
which drive the admin API of a running simulator (``simulator.host``/``port`` of the config,
or ``--url``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
from typing import Any

import aiohttp
from aiohttp import web

from ctiwatch.clock import RealClock
from ctiwatch.config import Config, ConfigError, load_config
from ctiwatch.simulator import SimulatorCore, make_app
from ctiwatch.simulator.faults import fault_spec


def register(sub: Any) -> None:
    parser = sub.add_parser("simulator", help="the built-in CloudCTI simulator")
    commands = parser.add_subparsers(dest="simulator_command", required=True)

    serve = commands.add_parser("serve", help="run the simulator on its own")
    serve.add_argument("--config", help="configuration file (default: embedded defaults)")
    serve.add_argument("--host", help="listen address (default: simulator.host)")
    serve.add_argument("--port", type=int, help="listen port (default: simulator.port)")
    serve.add_argument("--seed", type=int, help="seed for rate faults (default: random)")
    serve.set_defaults(func=serve_command)

    fault = commands.add_parser("fault", help="inject a fault into a running simulator")
    _client_options(fault)
    fault.add_argument("--service", required=True, choices=["click2dial", "crm"])
    fault.add_argument("--kind", required=True, choices=["outage", "unrecognized", "slow"])
    fault.add_argument("--customer")
    fault.add_argument("--location")
    fault.add_argument("--users", help="comma-separated user ids (default: every user)")
    fault.add_argument("--rate", type=float, help="share of requests hit, 0 to 1")
    fault.add_argument("--latency", help="extra answer time for slow, e.g. 20s")
    fault.add_argument("--for", dest="duration", help="how long, e.g. 10m (default: until cleared)")
    fault.add_argument(
        "--refuse", action="store_true", help="outage refuses connections instead of 503"
    )
    fault.set_defaults(func=fault_command)

    faults = commands.add_parser("faults", help="list the faults of a running simulator")
    _client_options(faults)
    faults.set_defaults(func=faults_command)

    clear = commands.add_parser("clear", help="remove faults from a running simulator")
    _client_options(clear)
    clear.add_argument("--id", dest="fault_id", help="remove only this fault (default: all)")
    clear.set_defaults(func=clear_command)


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="configuration file (default: embedded defaults)")
    parser.add_argument("--url", help="simulator base URL (default: from simulator.host/port)")


def admin_url(config: Config, override: str | None = None) -> str:
    if override:
        return override.rstrip("/")
    host = config.simulator.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.simulator.port}"


def fault_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The admin API's JSON for ``simulator fault``; the server validates it."""
    payload: dict[str, Any] = {"service": args.service, "kind": args.kind}
    if args.customer:
        payload["customer"] = args.customer
    if args.location:
        payload["location"] = args.location
    if args.users:
        payload["users"] = [u.strip() for u in args.users.split(",") if u.strip()]
    if args.rate is not None:
        payload["rate"] = args.rate
    if args.latency:
        payload["latency"] = args.latency
    if args.duration:
        payload["for"] = args.duration
    if args.refuse:
        payload["refuse"] = True
    return payload


# --- serve --------------------------------------------------------------------------------


def serve_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    host = args.host or config.simulator.host
    port = args.port if args.port is not None else config.simulator.port
    asyncio.run(serve(config, host, port, args.seed))
    return 0


async def serve(config: Config, host: str, port: int, seed: int | None = None) -> None:
    """Serve until cancelled (Ctrl-C)."""
    core = SimulatorCore.from_config(config)
    app = make_app(core, RealClock(), random.Random(seed))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        mode = "open mode (any user)" if not config.topology.customers else "configured topology"
        print(f"simulator listening on http://{host}:{port} ({mode})", flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# --- admin client --------------------------------------------------------------------------


def fault_command(args: argparse.Namespace) -> int:
    payload = fault_payload(args)
    try:
        fault_spec(payload)  # the simulator's own FaultSpec: the same rules, checked here first
    except ConfigError as exc:
        for line in exc.errors:
            print(f"error: {line}", file=sys.stderr)
        return 2
    config = load_config(args.config)
    # Names (customer, location, users) are checked by the simulator, which knows its topology.
    return _admin(admin_url(config, args.url), "POST", "/admin/faults", payload)


def faults_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    return _admin(admin_url(config, args.url), "GET", "/admin/faults", None)


def clear_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    path = f"/admin/faults/{args.fault_id}" if args.fault_id else "/admin/faults"
    return _admin(admin_url(config, args.url), "DELETE", path, None)


def _admin(base: str, method: str, path: str, payload: dict[str, Any] | None) -> int:
    try:
        status, body = asyncio.run(_request(base + path, method, payload))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        print(
            f"error: cannot reach the simulator at {base} (is `ctiwatch run` or "
            f"`ctiwatch simulator serve` running there?): {reason}",
            file=sys.stderr,
        )
        return 1
    if status >= 400:
        errors = body.get("errors") if isinstance(body, dict) else None
        for line in errors if isinstance(errors, list) else [f"HTTP {status}"]:
            print(f"error: {line}", file=sys.stderr)
        return 2
    if body is not None:
        print(json.dumps(body, indent=2))
    return 0


async def _request(url: str, method: str, payload: dict[str, Any] | None) -> tuple[int, Any]:
    timeout = aiohttp.ClientTimeout(total=10)
    # Inside `ctiwatch run` the admin API needs an admin's API token.
    token = os.environ.get("CTIWATCH_TOKEN", "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with (
        aiohttp.ClientSession(timeout=timeout, headers=headers) as session,
        session.request(method, url, json=payload) as response,
    ):
        text = await response.text()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        return response.status, body
