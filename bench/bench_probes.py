"""Probes per second against one local target, side by side with blackbox_exporter.

One run measures, one after the other, against the SAME target process (the simulator's
Click2Dial route, ``POST /api/v1/click2dial/{customer}/{location}/{user}/calls`` with a JSON
body and a bearer token; 201 with a call id, state and contact):

a. **bare aiohttp client** (the reference): 50 loops, each ``session.post(url, data=<the
   prebuilt body>)`` + ``read()`` + a status check, on one keep-alive ``ClientSession``.
b. **ctiwatch**: the real path: ``Scheduler`` + ``probe_click2dial`` + ``AiohttpTransport``
   (one keep-alive session) + a result sink that counts results. ``TARGETS`` targets on an
   ``INTERVAL`` of 0.1 s offer far more rounds than can run, and the scheduler's concurrency
   limit (50) keeps 50 probes in flight; every round is a full probe (request, answer check,
   ``ProbeResult`` with evidence, retries armed) and goes through the scheduler's batching.
c. **blackbox_exporter** (``prometheus-blackbox-exporter``, Debian): an ``http`` module doing
   the same POST with the same headers and body, ``valid_status_codes: [201]`` and a body
   regexp on the call state; driven by an aiohttp client at 50 ``/probe`` requests in flight.
   (blackbox_exporter opens a new connection to the target for every probe: that is how it
   works.) Skipped, with a message, when the binary is missing (``make bench-deps``).
d. **virtual time** (what ``ctiwatch simulate`` runs): scheduler + probes + simulator core on a
   ``VirtualTimeLoop``, no network.

The target is by default a tiny HTTP/1.1 server (asyncio protocol, no framework) in its own
process whose answers come from ``SimulatorCore.handle``, the same function the simulator app
serves: it is several times cheaper per request than an aiohttp server, so the client side is
what is measured. ``--target simulator`` serves the ctiwatch simulator app (aiohttp) instead.
The CPU used by every process during each phase is printed: the target must stay below one
core, and the client, blackbox_exporter and its driver all share the machine's cores.

``python -m bench probes`` runs it with the defaults; ``python bench/bench_probes.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from classifier.observation import CALL_SERVICES, ProbeResult, Service, TargetKey
from ctiwatch.clock import LoopClock, RealClock, VirtualTimeLoop
from ctiwatch.simulator import SimulatorCore, SimulatorTransport
from probes import (
    AiohttpTransport,
    HttpRequest,
    ProbeContext,
    ProbeTarget,
    Scheduler,
    sequential_ids,
)

CONCURRENCY = 50
WARMUP_SECONDS = 2.0
SECONDS = 10.0
TARGETS = 2_000
INTERVAL = 0.1
VIRTUAL_TARGETS = 2_000
VIRTUAL_ROUNDS = 30
TOKEN = "ctiwatch-demo-token"
NUMBER = "+31201234567"
CONTACT = "ctiwatch test contact"
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
REPO = Path(__file__).resolve().parents[1]
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TICKS = os.sysconf("SC_CLK_TCK")


def _targets(base_url: str, users: int, services: Sequence[Service]) -> list[ProbeTarget]:
    return [
        ProbeTarget(
            TargetKey(service, "bench", "bench-ams", f"user{n}"), base_url, TOKEN, NUMBER, CONTACT
        )
        for n in range(users)
        for service in services
    ]


def _click2dial_url(base_url: str, user: int) -> str:
    return f"{base_url}/api/v1/click2dial/bench/bench-ams/user{user}/calls"


# --- the target (its own process) ----------------------------------------------------------


_REASONS = {200: b"OK", 201: b"Created", 400: b"Bad Request", 401: b"Unauthorized"}


class _TargetProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 with keep-alive; the answers are ``SimulatorCore.handle``'s."""

    def __init__(self, core: SimulatorCore, clock: RealClock, rng: random.Random) -> None:
        self._core = core
        self._clock = clock
        self._rng = rng
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            lines = buffer[:end].decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(buffer) < end + 4 + length:
                break
            raw = buffer[end + 4 : end + 4 + length]
            buffer = buffer[end + 4 + length :]
            payload = json.loads(raw) if raw else None
            headers["Authorization"] = headers.get("authorization", "")
            request = HttpRequest(method, path, headers, payload)
            reply = self._core.handle(request, self._clock.now(), self._rng)
            answer = reply.response
            if answer is None:  # no faults are set here; kept for completeness
                assert self._transport is not None
                self._transport.abort()
                return
            reason = _REASONS.get(answer.status, b"Other")
            out.append(
                b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (answer.status, reason, len(answer.body))
            )
            out.append(answer.body)
        self._buffer = buffer
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


async def _serve(kind: str) -> None:
    core = SimulatorCore(TOKEN)
    clock = RealClock()
    rng = random.Random(1)
    loop = asyncio.get_running_loop()
    if kind == "fast":
        server = await loop.create_server(
            lambda: _TargetProtocol(core, clock, rng), "127.0.0.1", 0, backlog=1024
        )
        port = server.sockets[0].getsockname()[1]
    else:
        from aiohttp import web

        from ctiwatch.simulator import make_app

        runner = web.AppRunner(make_app(core, clock, rng), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
    print(f"listening {port}", flush=True)
    await asyncio.Event().wait()


# --- CPU accounting ----------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Phase:
    name: str
    count: int
    failed: int
    seconds: float
    cpu: dict[str, float]  # process name -> cores used on average during the window

    @property
    def rate(self) -> float:
        return self.count / self.seconds


class _Window:
    """The measured window: CPU of the given processes and wall time between start and stop."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._began = 0.0
        self._cpu: dict[str, float] = {}

    def start(self) -> None:
        self._began = time.perf_counter()
        self._cpu = {name: self._read(pid) for name, pid in self._pids.items()}

    def stop(self) -> tuple[float, dict[str, float]]:
        elapsed = time.perf_counter() - self._began
        used = {
            name: (self._read(pid) - self._cpu[name]) / elapsed for name, pid in self._pids.items()
        }
        return elapsed, used

    @staticmethod
    def _read(pid: int) -> float:
        return time.process_time() if pid == os.getpid() else _cpu_seconds(pid)


async def _measure(
    name: str,
    pids: dict[str, int],
    run: Callable[[Callable[[int, int], None], asyncio.Event], Coroutine[Any, Any, None]],
    *,
    warmup: float,
    seconds: float,
) -> Phase:
    """``run(count, stop)`` does the work and calls ``count(done, failed)`` as it goes."""
    window = _Window(pids)
    counting = False
    stop = asyncio.Event()
    done = failed = 0

    def count(n: int, bad: int) -> None:
        nonlocal done, failed
        if counting:
            done += n
            failed += bad

    async def timer() -> tuple[float, dict[str, float]]:
        nonlocal counting
        await asyncio.sleep(warmup)
        counting = True
        window.start()
        await asyncio.sleep(seconds)
        counting = False
        measured = window.stop()
        stop.set()
        return measured

    work = asyncio.create_task(run(count, stop))
    elapsed, cpu = await timer()
    await work
    return Phase(name, done, failed, elapsed, cpu)


# --- a. the bare aiohttp client ----------------------------------------------------------------


def _bare(
    base_url: str,
) -> Callable[[Callable[[int, int], None], asyncio.Event], Coroutine[Any, Any, None]]:
    async def run(count: Callable[[int, int], None], stop: asyncio.Event) -> None:
        body = json.dumps({"number": NUMBER}).encode()
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
        }
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker(n: int) -> None:
                url = _click2dial_url(base_url, n)
                while not stop.is_set():
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        count(1, response.status != 201)

            await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))

    return run


# --- b. ctiwatch: scheduler + probes + transport + sink ---------------------------------------


def _ctiwatch(
    base_url: str, targets: int, interval: float
) -> Callable[[Callable[[int, int], None], asyncio.Event], Coroutine[Any, Any, None]]:
    async def run(count: Callable[[int, int], None], stop: asyncio.Event) -> None:
        plan = _targets(base_url, targets, [Service.CLICK2DIAL])

        def sink(batch: list[ProbeResult]) -> None:
            count(len(batch), sum(not r.ok for r in batch))

        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:
            scheduler = Scheduler(
                plan,
                AiohttpTransport(session),
                ProbeContext(RealClock(), timeout=10.0, retries=2, retry_backoff=0.5),
                interval=interval,
                on_results=sink,
                concurrency=CONCURRENCY,
            )
            task = asyncio.create_task(scheduler.run())
            await stop.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run


# --- c. blackbox_exporter ----------------------------------------------------------------------


def _blackbox_config(folder: Path) -> Path:
    module = {
        "prober": "http",
        "timeout": "10s",
        "http": {
            "method": "POST",
            "headers": {
                "Accept": "application/json",
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": "application/json",
            },
            "body": json.dumps({"number": NUMBER}),
            "valid_status_codes": [201],
            "fail_if_body_not_matches_regexp": ['"state":"(dialing|ringing|connected)"'],
            "preferred_ip_protocol": "ip4",
        },
    }
    path = folder / "blackbox.yml"
    path.write_text(json.dumps({"modules": {"click2dial": module}}), encoding="utf-8")  # YAML
    return path


def _blackbox(
    exporter: str, base_url: str
) -> Callable[[Callable[[int, int], None], asyncio.Event], Coroutine[Any, Any, None]]:
    async def run(count: Callable[[int, int], None], stop: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker(n: int) -> None:
                params = {"module": "click2dial", "target": _click2dial_url(base_url, n)}
                while not stop.is_set():
                    async with session.get(f"{exporter}/probe", params=params) as response:
                        text = await response.read()
                        count(1, b"\nprobe_success 1" not in text)

            await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))

    return run


async def _wait_http(url: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


# --- d. virtual time ---------------------------------------------------------------------------


def virtual_benchmark() -> None:
    count = 0

    def sink(batch: list[ProbeResult]) -> None:
        nonlocal count
        count += len(batch)

    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        core = SimulatorCore(TOKEN)
        scheduler = Scheduler(
            _targets("http://simulator", VIRTUAL_TARGETS // 2, list(CALL_SERVICES)),
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
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(START)) as runner:
        runner.run(main())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"d. virtual time, scheduler + probes + simulator core, {VIRTUAL_TARGETS:,} targets x "
        f"{VIRTUAL_ROUNDS} rounds: {count / wall:,.0f} results/s wall, "
        f"{count / cpu:,.0f} results/s CPU ({count:,} results)",
        flush=True,
    )


# --- the run -----------------------------------------------------------------------------------


def _start_target(kind: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_probes", "serve", "--target", kind],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening "):
        process.kill()
        raise RuntimeError(f"the target did not start: {line!r}")
    return process, int(line.split()[1])


def _start_blackbox(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    process = subprocess.Popen(
        [
            BLACKBOX,
            f"--config.file={_blackbox_config(folder)}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, port


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _print_phase(phase: Phase) -> None:
    cpu = ", ".join(f"{name} {used:.2f}" for name, used in phase.cpu.items())
    mine = next(iter(phase.cpu.values()))  # this process: the client or the driver
    print(
        f"{phase.name}: {phase.rate:,.0f} probes/s ({phase.count:,} in {phase.seconds:.1f} s, "
        f"{phase.failed} failed; CPU cores used: {cpu}; this process "
        f"{mine * 1e6 / max(phase.rate, 1e-9):.0f} us CPU per probe)",
        flush=True,
    )


async def _http_phases(
    args: argparse.Namespace, target_pid: int, port: int, folder: Path
) -> list[Phase]:
    """Every phase ``args.repeat`` times, in turn (a, b, c, a, b, c, ...)."""
    base_url = f"http://127.0.0.1:{port}"
    me = os.getpid()
    timing = {"warmup": args.warmup, "seconds": args.seconds}
    client = {"client": me, "target": target_pid}
    blackbox: subprocess.Popen[bytes] | None = None
    if not os.access(BLACKBOX, os.X_OK):
        print(
            f"c. blackbox_exporter: skipped, {BLACKBOX} is missing "
            "(install it with `make bench-deps`)",
            flush=True,
        )
    else:
        blackbox, bb_port = _start_blackbox(folder)
        exporter = f"http://127.0.0.1:{bb_port}"
    phases: list[Phase] = []
    try:
        if blackbox is not None:
            await _wait_http(f"{exporter}/-/healthy")
        for _ in range(args.repeat):
            runs = [
                ("a. bare aiohttp client", client, _bare(base_url)),
                (
                    "b. ctiwatch scheduler + probes",
                    client,
                    _ctiwatch(base_url, args.targets, args.interval),
                ),
            ]
            if blackbox is not None:
                pids = {"driver": me, "blackbox_exporter": blackbox.pid, "target": target_pid}
                runs.append(("c. blackbox_exporter", pids, _blackbox(exporter, base_url)))
            for name, watched, run in runs:
                phase = await _measure(name, watched, run, **timing)
                _print_phase(phase)
                phases.append(phase)
    finally:
        if blackbox is not None:
            blackbox.terminate()
            blackbox.wait(timeout=10)
    return phases


def http_benchmark(args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; target: {args.target}; {CONCURRENCY} in flight; {args.warmup:g} s "
        f"warm-up + {args.seconds:g} s per phase, {args.repeat} x; ctiwatch: "
        f"{args.targets:,} targets every {args.interval:g} s, concurrency {CONCURRENCY}",
        flush=True,
    )
    target, port = _start_target(args.target)
    try:
        with tempfile.TemporaryDirectory() as folder:
            phases = asyncio.run(_http_phases(args, target.pid, port, Path(folder)))
    finally:
        target.terminate()
        target.wait(timeout=10)
    best: dict[str, Phase] = {}
    for phase in phases:
        if phase.name not in best or phase.rate > best[phase.name].rate:
            best[phase.name] = phase
    rates = {name[0]: phase.rate for name, phase in best.items()}
    print(
        "best of each: "
        + ", ".join(f"{name[0]} {phase.rate:,.0f}/s" for name, phase in best.items()),
        flush=True,
    )
    line = f"ctiwatch / bare aiohttp = {rates['b'] / rates['a']:.2f} (goal >= 0.5)"
    if "c" in rates:
        line += f"; ctiwatch / blackbox_exporter = {rates['b'] / rates['c']:.2f} (goal >= 2)"
    print(line, flush=True)


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve"])
    parser.add_argument("--target", choices=["fast", "simulator"], default="fast")
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--warmup", type=float, default=WARMUP_SECONDS)
    parser.add_argument("--targets", type=int, default=TARGETS)
    parser.add_argument("--interval", type=float, default=INTERVAL)
    parser.add_argument("--repeat", type=int, default=2, help="runs of every phase, in turn")
    parser.add_argument("--no-virtual", action="store_true", help="skip the virtual-time case")
    args = parser.parse_args(list(argv))
    if args.mode == "serve":
        asyncio.run(_serve(args.target))
        return
    http_benchmark(args)
    if not args.no_virtual:
        virtual_benchmark()


if __name__ == "__main__":
    main(sys.argv[1:])
