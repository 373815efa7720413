"""The status page and ``/api/v1/status`` under load, beside ``/healthz``, in the same run.

The measured process serves the real web app (``build_web_app`` over the real
``ConsoleServiceImpl``, its pipeline and store, with the metrics middleware on) on SQLite and
on PostgreSQL, with 1,000 users (50 customers x 2 locations x 10 users), a round of results of
every user and service plus CRM calls, three customers down (open P1 incidents) and 10,000
resolved incidents in history. The load comes from ``wrk`` in a second process (``make
bench-deps`` installs Debian's ``wrk``), 8 connections for ``SECONDS`` per route, asking for
gzip as browsers do. Goal: status page and API at >= 1,000 requests/s with p99 < 50 ms, and at
least a tenth of ``/healthz``'s rate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import platform
import re
import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import prometheus_client
from aiohttp import web

from classifier.observation import CALL_SERVICES, CENTRAL, ProbeResult, Service, Source, TargetKey
from ctiwatch.accounts import Accounts
from ctiwatch.app import restore_monitor, settle
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config
from ctiwatch.console import ConsoleServiceImpl
from ctiwatch.persist import Pipeline
from ctiwatch.storage import Store
from ctiwatch.web.app import build_web_app

CUSTOMERS, LOCATIONS, USERS = 50, 2, 10
HISTORY = 10_000
DOWN = 3  # customers whose first location fails Click2Dial (open P1s)
SECONDS = int(os.environ.get("BENCH_WEB_SECONDS", "8"))
CONNECTIONS = 8
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ROUTES = ("/healthz", "/", "/api/v1/status")


def topology(
    customers: int = CUSTOMERS, locations: int = LOCATIONS, users: int = USERS
) -> dict[str, Any]:
    """``customers`` x ``locations`` x ``users`` users (also the render benchmark's)."""
    return {
        "customers": [
            {
                "id": f"c{c:02d}",
                "name": f"Customer {c:02d} B.V.",
                "locations": [
                    {
                        "id": f"c{c:02d}-l{loc}",
                        "name": f"Site {loc}",
                        "users": [f"u{c:02d}{loc}{u:02d}" for u in range(users)],
                    }
                    for loc in range(locations)
                ],
            }
            for c in range(customers)
        ]
    }


async def populate(store: Store, pipeline: Pipeline, console: ConsoleServiceImpl) -> None:
    clock = pipeline.clock
    assert isinstance(clock, FixedClock)
    ids = iter(range(10**9))
    places = [
        (c["id"], loc["id"], loc["users"])
        for c in topology()["customers"]
        for loc in c["locations"]
    ]

    def result(customer: str, location: str, user: str, service: Service, ok: bool) -> ProbeResult:
        return ProbeResult(
            result_id=f"bench-{next(ids)}",
            target=TargetKey(service, customer, location, user),
            at=clock.now(),
            ok=ok,
            recognised=True if service is Service.CRM and ok else None,
            latency_ms=180.0,
            status=200 if ok else 503,
            evidence="HTTP 200" if ok else "HTTP 503 Service Unavailable",
            source=Source.PROBE,
            source_id=CENTRAL,
        )

    down = {places[i * LOCATIONS][1] for i in range(DOWN)}
    for minute in range(3):
        clock.set(NOW - timedelta(minutes=3 - minute))
        batch = [
            result(customer, location, user, service, location not in down)
            for customer, location, users in places
            for user in users
            for service in CALL_SERVICES
        ]
        await pipeline.on_results(batch)
    # History: a question opened and resolved, cloned into 10,000 resolved incidents.
    clock.set(NOW - timedelta(days=30))
    number = await console.open_question("c10", "bench", "how many calls did we miss?")
    await console.resolve(number, "bench", "answered")
    template = await store.incidents.get(number)
    assert template is not None
    records = []
    for n in range(HISTORY):
        customer = f"c{n % CUSTOMERS:02d}"
        at = NOW - timedelta(days=90) + timedelta(minutes=12 * n)
        state = {**template.state, "number": 1000 + n, "customer": customer}
        records.append(
            dataclasses.replace(
                template,
                number=1000 + n,
                customer=customer,
                opened_at=at,
                resolved_at=at + timedelta(hours=1),
                updated_at=at + timedelta(hours=1),
                state=state,
            )
        )
    for start in range(0, len(records), 1000):
        async with store.transaction() as tx:
            for record in records[start : start + 1000]:
                await tx.incidents.save(record)
    clock.set(NOW)


_LATENCY = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


async def wrk(url: str, token: str = "") -> tuple[float, float, str]:
    """Requests/s and p99 (ms) of ``url`` under wrk (as the API token ``token``: a viewer
    behind a wall screen), and its output."""
    process = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{SECONDS}s",
        "--latency",
        "-H",
        "Accept-Encoding: gzip",
        *(["-H", f"Authorization: Bearer {token}"] if token else []),
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode()
    rate, p99 = _RATE.search(output), _LATENCY.search(output)
    if rate is None or p99 is None or "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk against {url} did not run cleanly:\n{output}")
    return float(rate.group(1)), float(p99.group(1)) * _UNIT_MS[p99.group(2)], output


async def warm(base: str, token: str) -> None:
    """One request per route before measuring: the first rendering of a view after a start
    (templates compiled, every row rendered once) is not what the goal is about; wrk corrects
    for coordinated omission, so one such wait at the start of a run shows as its p99."""
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for route in ROUTES:
            async with session.get(base + route) as response:
                response.raise_for_status()
                await response.read()


async def run(url: str, backend: str) -> None:
    config = Config.model_validate({"topology": topology(), "storage": {"url": url}})
    clock = FixedClock(NOW)
    async with Store.open(url) as store:
        monitor = await restore_monitor(config, store, clock)
        pipeline = Pipeline(monitor, store, clock)
        console = ConsoleServiceImpl(config, pipeline)
        await populate(store, pipeline, console)
        await settle(console)  # the read model's first load, as ctiwatch run makes it
        view = await console.status()
        tiles = sum(len(loc.services) for c in view.customers for loc in c.locations)
        accounts = Accounts(store, clock)
        token, _ = await accounts.create_token("bench", "viewer", by="bench")
        app = build_web_app(
            console, accounts=accounts, metrics_registry=prometheus_client.CollectorRegistry()
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        try:
            await warm(base, token)
            figures = {route: await wrk(base + route, token) for route in ROUTES}
            feeding = asyncio.create_task(feed(pipeline, topology()))
            try:
                busy = await wrk(base + "/", token)
            finally:
                feeding.cancel()
        finally:
            await runner.cleanup()
    healthz = figures["/healthz"][0]
    print(
        f"{backend}: {CUSTOMERS * LOCATIONS * USERS} users, {tiles} tiles, "
        f"{len(view.open_incidents)} open incidents, {HISTORY:,} in history",
        flush=True,
    )
    for route in ROUTES:
        rate, p99, _ = figures[route]
        share = rate / healthz if healthz else 0.0
        print(
            f"  {route:16s} {rate:>9,.0f} requests/s  p99 {p99:6.2f} ms  {share:5.2f}x /healthz",
            flush=True,
        )
    rate, p99, _ = busy
    print(
        f"  {'/ (results in)':16s} {rate:>9,.0f} requests/s  p99 {p99:6.2f} ms  "
        f"{rate / healthz if healthz else 0.0:5.2f}x /healthz  "
        f"(a tenth of the users' results every second, through the pipeline)",
        flush=True,
    )


async def feed(pipeline: Pipeline, layout: dict[str, Any]) -> None:
    """A tenth of every user's results each second (the clock moves a second each time), so
    the state version moves and the view is rebuilt while the page is read."""
    clock = pipeline.clock
    assert isinstance(clock, FixedClock)
    users = [
        (c["id"], loc["id"], user)
        for c in layout["customers"]
        for loc in c["locations"]
        for user in loc["users"]
    ]
    for tick in range(10**6):
        clock.set(NOW + timedelta(seconds=tick + 1))
        share = users[(tick % 10) :: 10]
        await pipeline.on_results(
            [
                ProbeResult(
                    result_id=f"feed-{tick}-{n}",
                    target=TargetKey(Service.CRM, customer, location, user),
                    at=clock.now(),
                    ok=True,
                    recognised=True,
                    latency_ms=150.0,
                    status=200,
                    evidence="HTTP 200",
                    source=Source.PROBE,
                    source_id=CENTRAL,
                )
                for n, (customer, location, user) in enumerate(share)
            ]
        )
        await asyncio.sleep(1.0)


async def _postgres() -> tuple[str, str] | None:
    try:
        admin = await asyncpg.connect(
            host="127.0.0.1", port=5432, user="postgres", database="test", timeout=3
        )
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    name = f"ctiwatch_bench_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _drop(name: str) -> None:
    admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _main() -> None:
    if shutil.which("wrk") is None:
        print("wrk is not installed (make bench-deps installs it): skipped", flush=True)
        return
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"wrk -t1 -c{CONNECTIONS} -d{SECONDS}s, Accept-Encoding: gzip",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        await run(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}", "sqlite")
    postgres = await _postgres()
    if postgres is None:
        print("postgresql: not reachable at 127.0.0.1:5432, skipped", flush=True)
        return
    name, url = postgres
    try:
        await run(url, "postgresql")
    finally:
        await _drop(name)


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
