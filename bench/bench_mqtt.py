"""MQTT results ingested per second: agents → Mosquitto → ingestion → SQLite / PostgreSQL.

    .venv/bin/python bench/bench_mqtt.py [--results 200000] [--agents 4] [--batch 500]
        [--backends none,sqlite,postgres] [--broker 127.0.0.1:1883]

Agents are simulated in a separate process: each is an MQTT 5 client publishing pre-encoded
``ctiwatch.results/1`` batches with QoS 1 (up to ``--window`` messages in flight each), so the
measured process is the central one: the real :class:`ctiwatch.mqtt.ingest.Ingestion` (shared
subscription, validation against the topology, dedup) whose sink is ``store.results.add_many``
(rows, minute/hour rollups, latest result per target). Backend ``none`` is a sink that does
nothing: the ceiling set by MQTT and validation alone.

The rate is results stored divided by the time from the first result reaching the sink to the
last one stored. PostgreSQL gets a fresh database (dropped afterwards) on the server at
127.0.0.1:5432; SQLite a file in a temporary directory. Topic prefixes are unique per run.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.observation import ProbeResult, Service, Source, TargetKey
from ctiwatch.clock import RealClock
from ctiwatch.config import Config, MqttConfig, config_from_data
from ctiwatch.mqtt.ingest import Ingestion
from ctiwatch.mqtt.schema import encode_results

CUSTOMERS, LOCATIONS, USERS = 10, 5, 20  # 1,000 users, 2,000 targets


def topology_config() -> Config:
    return config_from_data(
        {
            "topology": {
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
        }
    )


def make_results(agent: int, count: int, run: str) -> list[ProbeResult]:
    start = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    out = []
    for n in range(count):
        c, loc, u = n % CUSTOMERS, (n // CUSTOMERS) % LOCATIONS, (n // 50) % USERS
        ok = n % 13 != 0
        out.append(
            ProbeResult(
                result_id=f"{run}-{agent}-{n}",
                target=TargetKey(
                    Service.CRM if n % 2 else Service.CLICK2DIAL, f"c{c}", f"c{c}-l{loc}", f"u{u}"
                ),
                at=start + timedelta(milliseconds=30 * n),
                ok=ok,
                recognised=(n % 17 != 0) if ok and n % 2 else None,
                latency_ms=float(20 + n % 200),
                status=200 if ok else 503,
                evidence=f"POST http://cti.example/api/v1/lookup [STATUS] ({200 if ok else 503})",
                source=Source.AGENT,
            )
        )
    return out


# --- the agents (child process) ----------------------------------------------------------------


def agents_process(
    host: str,
    port: int,
    prefix: str,
    agents: int,
    per_agent: int,
    batch: int,
    window: int,
    run: str,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    asyncio.run(_agents(host, port, prefix, agents, per_agent, batch, window, run, ready, go, out))


async def _agents(
    host: str,
    port: int,
    prefix: str,
    agents: int,
    per_agent: int,
    batch: int,
    window: int,
    run: str,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    import aiomqtt
    from aiomqtt.client import ProtocolVersion

    sent_at = datetime.now(UTC)
    payloads = []
    for agent in range(agents):
        results = make_results(agent, per_agent, run)
        payloads.append(
            [
                encode_results(f"agent-{agent}", sent_at, results[i : i + batch])
                for i in range(0, per_agent, batch)
            ]
        )
    ready.set()
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    started = time.perf_counter()

    async def one(agent: int) -> None:
        topic = f"{prefix}/results/agent-{agent}"
        async with aiomqtt.Client(
            host,
            port,
            identifier=f"bench-{run}-{agent}",
            protocol=ProtocolVersion.V5,
            max_inflight_messages=window,
            timeout=60,
        ) as client:
            limit = asyncio.Semaphore(window)

            async def send(payload: bytes) -> None:
                async with limit:
                    await client.publish(topic, payload, qos=1)

            await asyncio.gather(*(send(p) for p in payloads[agent]))

    await asyncio.gather(*(one(a) for a in range(agents)))
    out.put(time.perf_counter() - started)


# --- the central side (this process) ----------------------------------------------------------


class CountingSink:
    def __init__(self, store_many: Callable[[list[ProbeResult]], Awaitable[Any]] | None) -> None:
        self._store_many = store_many
        self.stored = 0
        self.first: float | None = None
        self.last = 0.0
        self.done = asyncio.Event()
        self.expected = 0

    async def __call__(self, batch: list[ProbeResult]) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        if self._store_many is None:
            self.stored += len(batch)
        else:
            self.stored += int(await self._store_many(batch))  # rows new to the database
        self.last = time.perf_counter()
        if self.stored >= self.expected:
            self.done.set()


async def measure(
    backend: str, url: str | None, args: argparse.Namespace, config: Config
) -> dict[str, Any]:
    from ctiwatch.storage import Store

    run = uuid.uuid4().hex[:8]
    mqtt = MqttConfig(
        enabled=True,
        host=args.host,
        port=args.port,
        topic_prefix=f"ctiwatch-bench/{run}/v1",
        shared_group=f"bench{run}",
    )
    per_agent = args.results // args.agents
    total = per_agent * args.agents
    store = await Store.open(url) if url else None
    try:
        sink = CountingSink(store.results.add_many if store else None)
        sink.expected = total
        ingestion = Ingestion(mqtt, config.topology, sink, clock=RealClock())
        ctx = multiprocessing.get_context("spawn")
        ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
        child = ctx.Process(
            target=agents_process,
            args=(
                args.host,
                args.port,
                mqtt.topic_prefix,
                args.agents,
                per_agent,
                args.batch,
                args.window,
                run,
                ready,
                go,
                out,
            ),
        )
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(ingestion.run())
            async with asyncio.timeout(10):
                await ingestion.subscribed.wait()
            child.start()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, ready.wait)
            go.set()
            async with asyncio.timeout(args.timeout):
                await sink.done.wait()
            ingestion.stop()
        publish_seconds = await loop.run_in_executor(None, out.get)
        child.join()
        assert sink.first is not None
        seconds = sink.last - sink.first
        counts = ingestion.counts.snapshot()
        if sink.stored != total:
            raise SystemExit(f"{backend}: {sink.stored} results stored, expected {total}")
        return {
            "backend": backend,
            "results": total,
            "messages": counts["messages"],
            "seconds": seconds,
            "rate": total / seconds,
            "publish_seconds": publish_seconds,
            "rejected": counts["rejected"],
            "duplicates": counts["duplicates"],
        }
    finally:
        if store is not None:
            await store.close()


def main(argv: Sequence[str] = ()) -> int:
    """Called by ``python -m bench`` with no arguments (the defaults)."""
    return asyncio.run(_main(argv))


async def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=int, default=200_000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500, help="results per MQTT message")
    parser.add_argument("--window", type=int, default=10, help="messages in flight per agent")
    parser.add_argument("--backends", default="none,sqlite,postgres")
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(list(argv))
    args.host, _, port = args.broker.partition(":")
    args.port = int(port or 1883)
    config = topology_config()

    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"{multiprocessing.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(
        f"{args.results:,} results from {args.agents} agents, {args.batch} per message, "
        f"QoS 1, broker {args.broker}"
    )
    rows = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "none":
                rows.append(await measure(backend, None, args, config))
            elif backend == "sqlite":
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
                rows.append(await measure(backend, url, args, config))
            elif backend == "postgres":
                rows.append(await _with_pg_database(args, config))
            else:
                raise SystemExit(f"unknown backend {backend!r}")
        row = rows[-1]
        print(
            f"{row['backend']:>9}: {row['rate']:>9,.0f} results/s "
            f"({row['results']:,} results in {row['seconds']:.2f} s, {row['messages']} messages; "
            f"agents published in {row['publish_seconds']:.2f} s; "
            f"rejected {row['rejected'] or 0}, duplicates {row['duplicates']})",
            flush=True,
        )
    return 0


async def _with_pg_database(args: argparse.Namespace, config: Config) -> dict[str, Any]:
    import asyncpg

    name = f"ctiwatch_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{args.pg}/test")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            return await measure("postgres", f"{args.pg}/{name}", args, config)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
