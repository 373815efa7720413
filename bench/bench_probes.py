"""Probes per second: over real HTTP against a local simulator, and in virtual time.

1. HTTP: ``ctiwatch simulator serve`` in its own process; in this process the real probes
   (click2dial and crm alternating) go through ``AiohttpTransport`` on one keep-alive
   ``ClientSession`` with 50 probes in flight, for ``HTTP_SECONDS`` after a warm-up.
2. Virtual time (what ``ctiwatch simulate`` runs): the scheduler with ``spread=False`` drives
   ``VIRTUAL_TARGETS`` targets for ``VIRTUAL_ROUNDS`` rounds through ``SimulatorTransport``
   and the simulator core on a ``VirtualTimeLoop``; results go to a counting sink. Reported
   per wall second and per CPU second (the machine is shared, CPU time is steadier).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.clock import LoopClock, VirtualTimeLoop
from ctiwatch.simulator import SimulatorCore, SimulatorTransport
from probes import (
    PROBES,
    AiohttpTransport,
    ProbeContext,
    ProbeTarget,
    Scheduler,
    sequential_ids,
)

CONCURRENCY = 50
HTTP_WARMUP_SECONDS = 1.0
HTTP_SECONDS = 10.0
VIRTUAL_TARGETS = 2_000
VIRTUAL_ROUNDS = 30
REPO = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _targets(base_url: str, users: int) -> list[ProbeTarget]:
    return [
        ProbeTarget(
            TargetKey(service, "bench", "bench-ams", f"user{n}"),
            base_url,
            "ctiwatch-demo-token",
            "+31201234567",
            "ctiwatch test contact",
        )
        for n in range(users)
        for service in Service
    ]


# --- 1. HTTP ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _http_rate(base_url: str) -> tuple[float, int, int]:
    """(probes per second, probes, failures) with ``CONCURRENCY`` probes in flight."""
    targets = _targets(base_url, CONCURRENCY)
    ctx = ProbeContext(LoopClock(), timeout=10.0, retries=0)
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        transport = AiohttpTransport(session)
        counting = False
        done = failed = 0
        stop_at = loop.time() + HTTP_WARMUP_SECONDS + HTTP_SECONDS

        async def worker(target: ProbeTarget) -> None:
            nonlocal done, failed
            probe = PROBES[target.kind]
            while loop.time() < stop_at:
                result = await probe(target, transport, ctx)
                if counting:
                    done += 1
                    failed += not result.ok

        async def clock() -> float:
            nonlocal counting
            await asyncio.sleep(HTTP_WARMUP_SECONDS)
            counting = True
            began = time.perf_counter()
            await asyncio.sleep(HTTP_SECONDS)
            counting = False
            return time.perf_counter() - began

        # One worker per target pair keeps CONCURRENCY probes in flight.
        workers = [asyncio.create_task(worker(t)) for t in targets[::2][:CONCURRENCY]]
        elapsed = await clock()
        await asyncio.gather(*workers)
    return done / elapsed, done, failed


def http_benchmark() -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "bench.yaml"
        config.write_text(f"simulator:\n  port: {port}\n", encoding="utf-8")
        server = subprocess.Popen(
            [sys.executable, "-m", "ctiwatch", "simulator", "serve", "--config", str(config)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line.startswith("simulator listening"):
                raise RuntimeError(f"simulator did not start: {line!r}")
            rate, done, failed = asyncio.run(_http_rate(f"http://127.0.0.1:{port}"))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(
        f"HTTP, aiohttp keep-alive, {CONCURRENCY} in flight, simulator in its own process: "
        f"{rate:,.0f} probes/s ({done:,} probes in {HTTP_SECONDS:g} s, {failed} failed)"
    )


# --- 2. virtual time ----------------------------------------------------------------------


def _virtual_loop() -> VirtualTimeLoop:
    loop = VirtualTimeLoop(START)
    # ctiwatch/clock.py keeps asyncio's 1e-9 s timer resolution, below the float step of
    # POSIX seconds (2.4e-7 s): a timer due at exactly the jumped-to instant would never fire.
    loop._clock_resolution = max(loop._clock_resolution, 1e-6)  # type: ignore[attr-defined]
    return loop


def virtual_benchmark() -> None:
    count = 0

    def sink(batch: list[ProbeResult]) -> None:
        nonlocal count
        count += len(batch)

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        core = SimulatorCore("ctiwatch-demo-token")
        scheduler = Scheduler(
            _targets("http://simulator", VIRTUAL_TARGETS // 2),
            SimulatorTransport(core, clock, random.Random(1)),
            ProbeContext(clock, new_id=sequential_ids()),
            interval=60,
            on_results=sink,
            concurrency=100_000,
            spread=False,
            deadline=math.inf,
        )
        await scheduler.run(until=START + timedelta(minutes=VIRTUAL_ROUNDS))

    wall, cpu = time.perf_counter(), time.process_time()
    with asyncio.Runner(loop_factory=_virtual_loop) as runner:
        runner.run(main())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"virtual time, scheduler + probes + simulator core, {VIRTUAL_TARGETS:,} targets x "
        f"{VIRTUAL_ROUNDS} rounds: {count / wall:,.0f} results/s wall, "
        f"{count / cpu:,.0f} results/s CPU ({count:,} results)"
    )


def main() -> None:
    http_benchmark()
    virtual_benchmark()


if __name__ == "__main__":
    main()
