"""Three ``ctiwatch run`` workers against one: central probes/s and agents' results/s.

    .venv/bin/python bench/bench_workers.py [--workers 1,3] [--interval 10] [--seconds 30]
        [--results 60000] [--agents 4] [--broker 127.0.0.1:1883]

For each number of workers: a fresh PostgreSQL database (127.0.0.1:5432, dropped afterwards),
the CloudCTI simulator in a process of its own, and that many ``ctiwatch run`` processes on
1,000 users (2,000 targets) probed every ``--interval`` seconds, sharing one MQTT group on the
local Mosquitto. Once every worker sees the others:

* **probes/s**: the central results stored per second over ``--seconds`` (by scheduled
  instant), against the demand (targets / interval); a (target, instant) stored twice would be
  a round probed twice (counted: it must be 0);
* **results/s**: ``--agents`` agents (a process of their own, MQTT 5, QoS 1) publish
  ``--results`` results; the rate is the results stored per second from the first to the
  last, ingested through the shared subscription by whichever worker the broker chose;
* the CPU seconds each worker used in each phase (``/proc``), and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import random
import socket
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier.observation import ProbeResult, Service, Source, TargetKey  # noqa: E402

CUSTOMERS, LOCATIONS, USERS = 10, 5, 20  # 1,000 users, 2,000 targets
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def topology() -> dict[str, Any]:
    return {
        "customers": [
            {
                "id": f"c{c}",
                "locations": [
                    {"id": f"c{c}-l{loc}", "users": [f"u{u}" for u in range(USERS)]}
                    for loc in range(LOCATIONS)
                ],
            }
            for c in range(CUSTOMERS)
        ]
    }


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


# --- the simulator and the agents (child processes) --------------------------------------------


def simulator_process(port: int, ready: Any) -> None:
    from aiohttp import web

    from ctiwatch.clock import RealClock
    from ctiwatch.config import Config
    from ctiwatch.simulator import SimulatorCore, make_app

    async def serve() -> None:
        core = SimulatorCore.from_config(Config.model_validate({"topology": topology()}))
        runner = web.AppRunner(make_app(core, RealClock(), random.Random(7)), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


def agent_results(agent: int, count: int, run: str) -> list[ProbeResult]:
    now = datetime.now(UTC)
    results = []
    for n in range(count):
        c, loc, u = n % CUSTOMERS, (n // CUSTOMERS) % LOCATIONS, (n // 50) % USERS
        results.append(
            ProbeResult(
                result_id=f"{run}-{agent}-{n}",
                target=TargetKey(
                    Service.CRM if n % 2 else Service.CLICK2DIAL, f"c{c}", f"c{c}-l{loc}", f"u{u}"
                ),
                at=now,
                ok=True,
                recognised=True if n % 2 else None,
                latency_ms=float(20 + n % 200),
                status=200,
                evidence="POST http://cti.example/api/v1/lookup [STATUS] (200) == 200",
                source=Source.AGENT,
                source_id=f"agent-{agent}",
            )
        )
    return results


def agents_process(host: str, port: int, prefix: str, agents: int, per_agent: int) -> None:
    asyncio.run(_agents(host, port, prefix, agents, per_agent))


async def _agents(host: str, port: int, prefix: str, agents: int, per_agent: int) -> None:
    import aiomqtt
    from aiomqtt.client import ProtocolVersion

    from ctiwatch.mqtt.schema import encode_results

    run = uuid.uuid4().hex[:8]
    batch = 500

    async def one(agent: int) -> None:
        results = agent_results(agent, per_agent, run)
        payloads = [
            encode_results(f"agent-{agent}", datetime.now(UTC), results[i : i + batch])
            for i in range(0, per_agent, batch)
        ]
        async with aiomqtt.Client(
            host, port, identifier=f"bench-{run}-{agent}", protocol=ProtocolVersion.V5,
            max_inflight_messages=20, timeout=60,
        ) as client:  # fmt: skip
            limit = asyncio.Semaphore(20)

            async def send(payload: bytes) -> None:
                async with limit:
                    await client.publish(f"{prefix}/results/agent-{agent}", payload, qos=1)

            await asyncio.gather(*(send(p) for p in payloads))

    await asyncio.gather(*(one(a) for a in range(agents)))


# --- the workers -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Worker:
    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))

    def sees(self, count: int) -> bool:
        said = [str(line.get("msg", "")) for line in self.lines]
        if count == 1:
            return any("status page http" in m for m in said)
        last = [m for m in said if m.startswith("probing ") and " workers)" in m]
        return bool(last) and last[-1].endswith(f"({count} workers)")

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            async with asyncio.timeout(20):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        await self._reader


def worker_config(
    folder: Path, name: str, url: str, simulator: int, prefix: str, interval: float
) -> Path:
    web, twilio, smtp = free_ports(3)
    data = {
        "topology": topology(),
        "probes": {
            "base_url": f"http://127.0.0.1:{simulator}",
            "interval": f"{interval}s",
            "timeout": "2s",
            "retries": 0,
        },
        "alerting": {
            "fakes": True,
            "node": name,
            "twilio": {
                "base_url": f"http://127.0.0.1:{twilio}",
                "webhook_base_url": f"http://127.0.0.1:{web}",
            },
            "smtp": {"host": "127.0.0.1", "port": smtp},
        },
        "storage": {"url": url},
        "mqtt": {
            "enabled": True,
            "topic_prefix": prefix,
            "shared_group": prefix.replace("/", "-"),
        },
        "simulator": {"enabled": False},
        "web": {"host": "127.0.0.1", "port": web},
        "logging": {"format": "json"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def count(engine: Any, where: str) -> int:
    from sqlalchemy import text

    async with engine.connect() as conn:
        return int(
            (await conn.execute(text(f"SELECT count(*) FROM probe_results {where}"))).scalar()
        )


async def measure(workers: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from ctiwatch.storage import Store

    name = f"ctiwatch_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG}/{name}"
    async with Store.open(url):
        pass  # migrated once, before the workers start
    ctx = multiprocessing.get_context("spawn")
    [sim_port] = free_ports(1)
    ready = ctx.Event()
    simulator = ctx.Process(target=simulator_process, args=(sim_port, ready), daemon=True)
    simulator.start()
    await asyncio.get_running_loop().run_in_executor(None, ready.wait)
    prefix = f"ctiwatch-bench/{uuid.uuid4().hex[:8]}/v1"
    engine = create_async_engine(url)
    running: list[Worker] = []
    try:
        for n in range(workers):
            config = worker_config(folder, f"w{n}", url, sim_port, prefix, args.interval)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ctiwatch", "run", "--config", str(config), cwd=ROOT,
                env={**os.environ, "CTIWATCH_LOG_LEVEL": "INFO"},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            running.append(Worker(f"w{n}", process))
        async with asyncio.timeout(120):
            while not all(w.sees(workers) for w in running):
                for w in running:
                    if w.process.returncode is not None:
                        raise SystemExit(f"{w.name} ended: {w.lines[-5:]}")
                await asyncio.sleep(0.5)
        await asyncio.sleep(2 * args.interval + 3)  # every worker at its pace

        # Probing: central results by scheduled instant over the window.
        cpu0 = [cpu_seconds(w.process.pid) for w in running]
        since = datetime.now(UTC)
        await asyncio.sleep(args.seconds)
        until = datetime.now(UTC)
        cpu1 = [cpu_seconds(w.process.pid) for w in running]
        await asyncio.sleep(args.interval + 3)  # rounds of the window stored
        async with engine.connect() as conn:
            window = {"since": since, "until": until}
            probes = int(
                (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM probe_results WHERE source = 'probe'"
                            " AND at >= :since AND at < :until"
                        ),
                        window,
                    )
                ).scalar()
                or 0
            )
            twice = int(
                (
                    await conn.execute(
                        text(
                            "SELECT count(*) FROM (SELECT 1 FROM probe_results"
                            " WHERE source = 'probe' AND at >= :since AND at < :until"
                            ' GROUP BY service, customer, location, "user", at'
                            " HAVING count(*) > 1) AS d"
                        ),
                        window,
                    )
                ).scalar()
                or 0
            )
        seconds = (until - since).total_seconds()

        # Agents' results over MQTT, shared between the workers.
        agents_before = await count(engine, "WHERE source = 'agent'")
        per_agent = args.results // args.agents
        expected = per_agent * args.agents
        cpu2 = [cpu_seconds(w.process.pid) for w in running]
        publisher = ctx.Process(
            target=agents_process,
            args=(args.host, args.port, prefix, args.agents, per_agent),
        )
        publisher.start()
        first: float | None = None
        last = time.perf_counter()
        stored = 0
        async with asyncio.timeout(args.timeout):
            while stored < expected:
                stored = await count(engine, "WHERE source = 'agent'") - agents_before
                now = time.perf_counter()
                if stored and first is None:
                    first = now
                if stored:
                    last = now
                await asyncio.sleep(0.2)
        cpu3 = [cpu_seconds(w.process.pid) for w in running]
        publisher.join()
        assert first is not None
        return {
            "workers": workers,
            "targets": 2 * CUSTOMERS * LOCATIONS * USERS,
            "demand": 2 * CUSTOMERS * LOCATIONS * USERS / args.interval,
            "probes_per_s": probes / seconds,
            "twice": twice,
            "probe_cpu": [b - a for a, b in zip(cpu0, cpu1, strict=True)],
            "probe_seconds": seconds,
            "results": expected,
            "results_per_s": expected / max(last - first, 1e-9),
            "ingest_cpu": [b - a for a, b in zip(cpu2, cpu3, strict=True)],
            "ingest_seconds": last - first,
            "load": os.getloadavg(),
        }
    finally:
        for w in running:
            await w.stop()
            problems = Counter(
                str(line.get("msg", ""))[:120]
                for line in w.lines
                if str(line.get("level", "")).lower() in ("warning", "error", "critical")
            )
            for text_, times in problems.most_common(5):
                print(f"  {w.name}: {times}x {text_}", flush=True)
        await engine.dispose()
        simulator.terminate()
        simulator.join()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main(argv: Sequence[str] = ()) -> int:
    """Called by ``python -m bench`` with no arguments (the defaults)."""
    return asyncio.run(_main(argv))


async def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,3")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--results", type=int, default=60_000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(list(argv))
    host, _, port = args.broker.partition(":")
    args.host, args.port = host, int(port or 1883)
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        for workers in [int(n) for n in args.workers.split(",")]:
            got = await measure(workers, args, Path(folder))
            print(
                f"{got['workers']} worker(s), {got['targets']} targets every {args.interval:g}s "
                f"(demand {got['demand']:,.0f} probes/s): {got['probes_per_s']:,.0f} probes/s "
                f"stored, {got['twice']} rounds probed twice; CPU s per worker "
                f"{[round(c, 1) for c in got['probe_cpu']]} in {got['probe_seconds']:.0f}s",
                flush=True,
            )
            print(
                f"{got['workers']} worker(s), agents: {got['results']:,} results in "
                f"{got['ingest_seconds']:.1f}s = {got['results_per_s']:,.0f} results/s; CPU s "
                f"per worker {[round(c, 1) for c in got['ingest_cpu']]}; load average "
                f"{', '.join(f'{x:.2f}' for x in got['load'])}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
