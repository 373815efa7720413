"""CPU cost of the status view at 10,000 targets: a build, and each rendering of it.

What the web does once per state version at the soak's size (50 customers x 4 locations x 25
users x 2 services): ``ConsoleServiceImpl.status()`` builds the view from memory, then the
status page, its live fragment, the wall screen and ``/api/v1/status`` are rendered from it.
Measured in process CPU time (``time.process_time``, the least of ``REPEAT`` runs), which a
busy machine inflates far less than wall-clock figures: *cold* is the first rendering (every
row new), *next* is the rendering of the next view when a tenth of the users had a result
(each distinct user tile and recognition row is rendered once and kept, ``RowMemo``).
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.bench_web import topology as web_topology
from classifier.observation import CALL_SERVICES, CENTRAL, ProbeResult, Service, Source, TargetKey
from ctiwatch.app import restore_monitor
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config
from ctiwatch.console import ConsoleServiceImpl
from ctiwatch.persist import Pipeline
from ctiwatch.storage import Store
from ctiwatch.web.pages import Pages
from ctiwatch.web.readmodel import data_of, page_of
from ctiwatch.web.render import StatusJson, build_environment, overall

CUSTOMERS, LOCATIONS, USERS = 50, 4, 25
REPEAT = 5
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TZ = ZoneInfo("Europe/Amsterdam")


def topology() -> dict[str, Any]:
    return web_topology(CUSTOMERS, LOCATIONS, USERS)


def results(clock: FixedClock, share: int, tick: int) -> list[ProbeResult]:
    """One result of every ``share``-th user and service (CRM ones recognised but a few)."""
    found = []
    n = 0
    for c in topology()["customers"]:
        for loc in c["locations"]:
            for user in loc["users"]:
                n += 1
                if n % share:
                    continue
                for service in CALL_SERVICES:
                    crm = service is Service.CRM
                    found.append(
                        ProbeResult(
                            result_id=f"r{tick}-{n}-{service.value}",
                            target=TargetKey(service, c["id"], loc["id"], user),
                            at=clock.now(),
                            ok=True,
                            recognised=(n + tick) % 7 != 0 if crm else None,
                            latency_ms=150.0,
                            status=200,
                            evidence="HTTP 200",
                            source=Source.PROBE,
                            source_id=CENTRAL,
                        )
                    )
    return found


async def cpu_ms(work: Callable[[], Any]) -> float:
    started = time.process_time()
    await work()
    return (time.process_time() - started) * 1000


async def run(url: str) -> dict[str, tuple[float, float]]:
    config = Config.model_validate({"topology": topology(), "storage": {"url": url}})
    clock = FixedClock(NOW - timedelta(minutes=3))
    async with Store.open(url) as store:
        monitor = await restore_monitor(config, store, clock)
        pipeline = Pipeline(monitor, store, clock)
        console = ConsoleServiceImpl(config, pipeline)
        for minute in range(3):
            clock.set(NOW - timedelta(minutes=3 - minute))
            await pipeline.on_results(results(clock, 1, minute))
        clock.set(NOW)
        env = build_environment(TZ)
        pages = Pages(console, env, TZ)
        document = StatusJson(TZ)

        def renderings(view: Any) -> dict[str, Callable[[], Any]]:
            banner = overall(view)
            return {
                "status page (/)": lambda: page_of(
                    pages.pieces("status.html", "/", view=view, banner=banner)
                ),
                "live fragment": lambda: page_of(
                    pages.pieces("status_live.html", "/", view=view, banner=banner)
                ),
                "wall screen": lambda: page_of(
                    pages.pieces("wall.html", "/wall", view=view, banner=banner)
                ),
                "/api/v1/status": lambda: data_of(document.pieces(view)),
            }

        figures: dict[str, tuple[float, float]] = {}
        view = await console.status()
        cold = {name: await cpu_ms(work) for name, work in renderings(view).items()}
        builds: list[float] = []
        nexts: dict[str, list[float]] = {name: [] for name in cold}
        for tick in range(REPEAT):
            clock.set(NOW + timedelta(seconds=6 * (tick + 1)))
            await pipeline.on_results(results(clock, 10, 100 + tick))
            pipeline.version.bump(major=True)
            builds.append(await cpu_ms(console.status))
            view = await console.status()
            for name, work in renderings(view).items():
                nexts[name].append(await cpu_ms(work))
        figures["status view build"] = (float("nan"), min(builds))
        for name in cold:
            figures[name] = (cold[name], min(nexts[name]))
        return figures


async def _main() -> None:
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"{CUSTOMERS * LOCATIONS * USERS * len(CALL_SERVICES):,} targets; "
        f"CPU ms, least of {REPEAT}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        figures = await run(f"sqlite+aiosqlite:///{Path(folder) / 'render.db'}")
    for name, (cold, after) in figures.items():
        first = "" if cold != cold else f"cold {cold:7.1f} ms   "
        print(f"  {name:20s} {first:>20s}next view {after:7.1f} ms", flush=True)


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
