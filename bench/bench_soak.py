"""Soak: 10,000 targets, 24 simulated hours of mixed faults, then real minutes of web load.

One process runs the pieces ``ctiwatch run`` runs, on a generated configuration of
``customers x locations x users`` users and both services (50 x 4 x 25 x 2 = 10,000 targets):

* **Phase 1, virtual time** (``--hours``, default 24): the probe scheduler and the real probes
  against the built-in CloudCTI simulator over the in-process transport (as ``ctiwatch
  simulate`` does), with a schedule of mixed faults repeated every six hours (location and
  single-user outages, a second customer down at the same time so the contingency line is
  called, degraded recognition, slow answers under and past the probes' timeout, faults only
  one remote agent sees); two remote agents whose results take the MQTT path in-process
  (encoded as their batches, then the ingestion's ``Receiver``: validation and deduplication);
  the real :class:`~ctiwatch.persist.Pipeline` (results and rollups stored, classifier,
  incidents, SLA timers, escalation, routing, each step's incident, timeline and outbox rows in
  one transaction) on SQLite (a fresh file) or, with ``--pg``, a fresh PostgreSQL database; the
  timers task; the outbox sender delivering to the project's fake Twilio and SMTP servers; a
  person acknowledging what stays open; retention every hour. The event loop's time is virtual
  and jumps to the next timer when nothing is left to do, except while a database call or an
  outbox send is in flight: then it waits for it in real time, so the database keeps up
  exactly as it would with a real clock (no round is skipped because storage is slower than
  virtual time).
* **Phase 2, real time** (``--minutes``, default 10): the same loop switches to real time
  (continuing from where virtual time ended, so nothing is due all at once) and the process
  goes on as the service: the scheduler with spread rounds (``ctiwatch run``'s), the same
  store, monitor and pipeline, and the web console (status page, ``/api/v1/status``,
  ``/healthz``) served on a local port and loaded by ``--clients`` concurrent clients in a
  separate process (closed loop: each asks again as soon as it is answered).

Measured: RSS of this process (``/proc/self/status``), sampled every ten simulated minutes and
every two real seconds; warm-up and steady level, the slope after warm-up, the maximum; the
scheduler's lateness in phase 2 (a round's probe start minus its scheduled instant, every
round); the web's requests/s and latency percentiles (from the clients); incidents and alerts.

Goals (exit status 1 when one is missed): RSS at most 300 MB throughout; no growth after
warm-up beyond the tolerance (see :data:`SLOPE_TOLERANCE_MB_PER_HOUR` and
:data:`GROWTH_TOLERANCE_MB`); scheduler lateness p99 under 25 ms.

``make soak`` runs it with the defaults (about half an hour to an hour on 2 cores);
``python bench/bench_soak.py --help`` for the options (``--hours 2 --minutes 1`` for a short
run, ``--pg`` for PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import random
import selectors
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.channels import open_channels
from alerting.channels.base import Channel, SendReceipt
from alerting.outbox import OutboxMessage
from alerting.rotation import on_call
from alerting.sender import OutboxSender, this_process
from classifier.observation import ProbeResult, TargetKey
from ctiwatch.accounts import Accounts
from ctiwatch.app import restore_monitor, settle
from ctiwatch.clock import LoopClock
from ctiwatch.config import Config
from ctiwatch.console import ConsoleServiceImpl
from ctiwatch.fakes import FakeSmtp, FakeTwilio
from ctiwatch.memory import tune_allocator
from ctiwatch.metrics import Metrics
from ctiwatch.mqtt.ingest import AgentTracker, Receiver
from ctiwatch.mqtt.schema import encode_results
from ctiwatch.mqtt.topics import Topics
from ctiwatch.persist import Pipeline, StepFailed
from ctiwatch.scenario import Scenario, scenario_from_data
from ctiwatch.settings import context_from_config, targets_from_config
from ctiwatch.simulate import fault_plan
from ctiwatch.simulator.core import SimulatorCore, users_from_topology
from ctiwatch.simulator.transport import SimulatorTransport
from ctiwatch.storage import Store
from ctiwatch.supervisor import Supervisor
from ctiwatch.web.app import build_web_app
from incidents.model import IncidentError
from probes import PROBES, Probe, ProbeContext, ProbeTarget, Scheduler, Transport
from probes.base import random_ids

RSS_LIMIT_MB = 300.0
LATENESS_P99_GOAL_MS = 25.0
# Growth after warm-up that still counts as flat. The monitor's memory per target is bounded by
# design (minute buckets, capped evidence lines); what legitimately still moves after warm-up
# is allocator noise (pymalloc arenas, SQLite's page cache, aiohttp's buffers), which settles
# at a few MB. A leak of even 1 byte per result is 14 MB a day at 10,000 targets every minute,
# i.e. 0.6 MB per simulated hour: the phase-1 tolerance (least-squares slope over the samples
# after warm-up) is set just under that, so such a leak fails the run. In phase 2 the web's
# requests are what could leak; the tolerance is on the growth from the end of its warm-up to
# its end (not a slope: ten minutes are too short for a slope to mean much per hour).
SLOPE_TOLERANCE_MB_PER_HOUR = 0.5
GROWTH_TOLERANCE_MB = 8.0
WARMUP_FRACTION = 0.25  # of each phase: classifier windows fill, caches and pools grow
SAMPLE_VIRTUAL = timedelta(minutes=10)
SAMPLE_REAL_SECONDS = 2.0
ACK_AFTER = timedelta(minutes=20)  # a person acknowledges what stays open this long
PERSON = "soak-oncall"
AGENTS = 2
ONCALL = ["+31611111111", "+31622222222"]

# The web's clients run in their own process (bench/webload.py: aiohttp only, quick to start).
WEBLOAD = str(Path(__file__).resolve().parent / "webload.py")

log = logging.getLogger("bench.soak")


# --- the event loop: virtual time that waits for the database, then real time -----------------


class SoakLoop(asyncio.SelectorEventLoop):
    """Virtual POSIX seconds from ``start`` (like :class:`ctiwatch.clock.VirtualTimeLoop`), but
    time only jumps while nothing is :attr:`busy` (a database call or an outbox send in flight:
    those are waited for in real time). :meth:`go_real` switches to real time, continuing from
    the virtual instant reached."""

    def __init__(self, start: datetime) -> None:
        self._virtual = start.timestamp()
        self._real_since: float | None = None
        self.busy = 0
        super().__init__(selector=_SoakSelector(self))
        self._clock_resolution = 1e-6  # see VirtualTimeLoop

    @property
    def is_real(self) -> bool:
        return self._real_since is not None

    def go_real(self) -> None:
        self._real_since = time.monotonic()

    def advance(self, seconds: float) -> None:
        self._virtual += max(0.0, seconds)

    def time(self) -> float:
        if self._real_since is None:
            return self._virtual
        return self._virtual + (time.monotonic() - self._real_since)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """While inside, virtual time does not jump."""
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1


class _SoakSelector(selectors.BaseSelector):
    def __init__(self, loop: SoakLoop) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        if loop.is_real:
            return self._inner.select(timeout)
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if loop.busy:
            # A database call or a send is in flight (a thread's answer, a socket): wait for
            # it in real time; virtual time stands still.
            return self._inner.select(0.05)
        if timeout is None:
            return self._inner.select(None)
        loop.advance(timeout)
        return []

    def close(self) -> None:
        self._inner.close()

    def get_map(self) -> Any:
        return self._inner.get_map()


class _Clock(LoopClock):
    """The loop's clock, remembering the datetime of the last instant read (a round's probes
    all read the same virtual instant)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._bound = loop
        self._last = math.nan
        self._last_now = datetime.fromtimestamp(0, UTC)

    def now(self) -> datetime:
        at = self._bound.time()
        if at != self._last:
            self._last = at
            self._last_now = datetime.fromtimestamp(round(at, 6), UTC)
        return self._last_now


def _hold_database(store: Store, loop: SoakLoop) -> None:
    """Every read and write transaction of ``store`` holds virtual time while it runs."""
    db = store._db  # the bench reaches in: the product has no hook for this, nor needs one
    read, write = db.read, db.write

    def held(
        opener: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
    ) -> Callable[[], contextlib.AbstractAsyncContextManager[Any]]:
        @contextlib.asynccontextmanager
        async def run() -> AsyncIterator[Any]:
            with loop.holding():
                async with opener() as conn:
                    yield conn

        return run

    db.read = held(read)  # type: ignore[method-assign,assignment]
    db.write = held(write)  # type: ignore[method-assign,assignment]


class _Held:
    """A channel whose sends hold virtual time while they talk to the fake Twilio or SMTP
    server (the sender's backoff between attempts still runs in virtual time)."""

    def __init__(self, channel: Channel, loop: SoakLoop) -> None:
        self._channel = channel
        self._loop = loop

    async def send(self, message: OutboxMessage) -> SendReceipt:
        with self._loop.holding():
            return await self._channel.send(message)


# --- what is monitored --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    customers: int = 50
    locations: int = 4
    users: int = 25

    @property
    def targets(self) -> int:
        return self.customers * self.locations * self.users * 2


def customers_data(shape: Shape) -> list[dict[str, Any]]:
    return [
        {
            "id": f"c{c}",
            "name": f"Customer {c}",
            "contact": {"name": f"Contact {c}", "email": f"ops{c}@example.com"},
            "locations": [
                {"id": f"c{c}-l{n}", "users": [{"id": f"u{c}-{n}-{u}"} for u in range(shape.users)]}
                for n in range(shape.locations)
            ],
        }
        for c in range(shape.customers)
    ]


def scenario_data(shape: Shape, start: datetime, hours: float) -> dict[str, Any]:
    """The topology, two agents and the faults: one cycle of mixed faults every six hours (or
    once, compressed into the run when it is shorter), each cycle aimed at other customers."""
    customers = customers_data(shape)
    cycle = min(6.0, hours)
    scale = cycle / 6.0
    faults: list[dict[str, Any]] = []

    def window(at: float, length: float, base: float) -> dict[str, str]:
        begin = start + timedelta(hours=base + at * scale)
        return {
            "from": begin.isoformat(),
            "to": (begin + timedelta(hours=length * scale)).isoformat(),
        }

    n = shape.customers
    k = 0
    base = 0.0
    while base < hours:
        c = [(k * 5 + i) % n for i in range(5)]
        faults += [
            # a location's Click2Dial down (P1) and a second customer's CRM beside it
            {"service": "click2dial", "customer": f"c{c[0]}", "location": f"c{c[0]}-l0",
             "kind": "outage"} | window(0.5, 0.75, base),
            {"service": "crm", "customer": f"c{c[1]}", "kind": "outage"} | window(0.75, 0.5, base),
            # one user down (P2)
            {"service": "crm", "customer": f"c{c[2]}", "location": f"c{c[2]}-l1",
             "users": [f"u{c[2]}-1-0"], "kind": "outage"} | window(2.0, 0.5, base),
            # degraded recognition at a location, misses of one user
            {"service": "click2dial", "customer": f"c{c[3]}", "location": f"c{c[3]}-l0",
             "kind": "unrecognized", "rate": 0.4} | window(3.0, 1.0, base),
            {"service": "crm", "customer": f"c{c[3]}", "users": [f"u{c[3]}-1-1"],
             "kind": "unrecognized", "rate": 0.1} | window(3.0, 1.5, base),
            # slow: under the timeout for a location, past it for a user
            {"service": "crm", "customer": f"c{c[4]}", "location": f"c{c[4]}-l0",
             "kind": "slow", "latency": "2s"} | window(4.0, 1.0, base),
            {"service": "click2dial", "customer": f"c{c[4]}", "users": [f"u{c[4]}-1-2"],
             "kind": "slow", "latency": "20s"} | window(4.5, 0.5, base),
            # what only the agent at the customer's site sees
            {"service": "click2dial", "customer": "c0", "location": "c0-l1",
             "kind": "outage", "sources": ["agent-0"]} | window(5.0, 0.5, base),
        ]  # fmt: skip
        k += 1
        base += cycle
    return {
        "start": start.isoformat(),
        "duration": f"{max(1, round(hours * 3600))}s",
        "probe_interval": "60s",
        "oncall": ONCALL,
        "seed": 10,
        "customers": customers,
        "agents": [
            {"id": f"agent-{a}", "locations": [f"c{a}-l{n}" for n in range(shape.locations)]}
            for a in range(min(AGENTS, shape.customers))
        ],
        "faults": faults,
    }


def soak_config(
    shape: Shape, url: str, interval: timedelta, twilio: FakeTwilio, smtp: FakeSmtp
) -> Config:
    return Config.model_validate(
        {
            "topology": {"customers": customers_data(shape)},
            "probes": {"interval": f"{interval.total_seconds():g}s"},
            "storage": {"url": url},
            "alerting": {
                "oncall": ONCALL,
                "escalation": [
                    {"name": "second line", "after": "15m", "numbers": [ONCALL[1]]},
                    {"name": "manager", "after": "45m", "numbers": ["+31633333333"]},
                ],
                "twilio": {"base_url": twilio.url, "webhook_base_url": "http://127.0.0.1:9"},
                "smtp": {"host": "127.0.0.1", "port": smtp.port},
            },
            "simulator": {"enabled": False},
            "logging": {"level": "WARNING"},
        }
    )


# --- measurements -------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass(slots=True)
class Sample:
    phase: int
    at: str  # the loop's instant (virtual in phase 1)
    hours: float  # since the start of the phase, on the loop's clock
    wall: float  # real seconds since the bench started
    rss_mb: float
    results: int


def percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (hours, MB)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


@dataclass(slots=True)
class PhaseMemory:
    warmup_mb: float  # the level at the end of warm-up
    steady_mean_mb: float
    end_mb: float
    max_mb: float
    slope_mb_per_hour: float
    growth_mb: float  # end - end of warm-up


def phase_memory(samples: Sequence[Sample]) -> PhaseMemory:
    if not samples:
        return PhaseMemory(*(math.nan,) * 6)
    span = samples[-1].hours
    steady = [s for s in samples if s.hours >= span * WARMUP_FRACTION] or [samples[-1]]
    return PhaseMemory(
        warmup_mb=steady[0].rss_mb,
        steady_mean_mb=sum(s.rss_mb for s in steady) / len(steady),
        end_mb=samples[-1].rss_mb,
        max_mb=max(s.rss_mb for s in samples),
        slope_mb_per_hour=slope_per_hour([(s.hours, s.rss_mb) for s in steady]),
        growth_mb=samples[-1].rss_mb - steady[0].rss_mb,
    )


@dataclass(slots=True)
class Report:
    targets: int
    hours: float
    minutes: float
    backend: str
    phase1_wall_s: float = 0.0
    phase2_wall_s: float = 0.0
    results: int = 0
    results_phase1: int = 0
    skipped_rounds: int = 0
    incidents: int = 0
    incidents_open: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    fake_twilio: dict[str, int] = field(default_factory=dict)
    fake_mails: int = 0
    errors_logged: int = 0
    memory: dict[str, Any] = field(default_factory=dict)
    lateness_ms: dict[str, float] = field(default_factory=dict)
    rounds_phase2: int = 0
    web: dict[str, Any] = field(default_factory=dict)
    # Process CPU seconds (every thread) per phase, and the status views built in phase 2:
    # what the run cost, which a busy machine does not inflate as it does wall-clock figures.
    cpu_phase1_s: float = 0.0
    cpu_phase2_s: float = 0.0
    views_built: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)  # {goal, met, measured}
    failures: list[str] = field(default_factory=list)


class StallSampler:
    """With ``--stalls``: what the event loop was running whenever it stalled (phase 2).

    A coroutine notes the time every few milliseconds; a thread looks every millisecond and,
    while that note is older than ``threshold``, records the main thread's stack (this
    repository's frames). A poor man's py-spy: the counts are milliseconds of stall."""

    def __init__(self, threshold: float = 0.010) -> None:
        self.threshold = threshold
        self.beat = time.perf_counter()
        self.stacks: Counter[str] = Counter()
        self.stalled_ms = 0
        self._main = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._root = str(Path(__file__).resolve().parent.parent)

    async def heartbeat(self) -> None:
        self._thread.start()
        try:
            while True:
                self.beat = time.perf_counter()
                await asyncio.sleep(0.002)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(0.001):
            if time.perf_counter() - self.beat < self.threshold:
                continue
            frame = sys._current_frames().get(self._main)
            if frame is None:
                continue
            self.stalled_ms += 1
            mine = [
                f"{Path(f.filename).relative_to(self._root)}:{f.lineno} {f.name}"
                for f in traceback.extract_stack(frame)
                if f.filename.startswith(self._root) and "/.venv/" not in f.filename
            ]
            self.stacks[" <- ".join(reversed(mine[-6:]))] += 1

    def print(self) -> None:
        print(
            f"loop stalled (> {self.threshold * 1000:g} ms) for about {self.stalled_ms} ms in "
            "all; where (ms):",
            file=sys.stderr,
        )
        for stack, ms in self.stacks.most_common(25):
            print(f"  {ms:6d}  {stack}", file=sys.stderr)


class _ErrorCount(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


# --- the run -----------------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace, loop: SoakLoop, url: str) -> None:
        self.args = args
        self.loop = loop
        self.url = url
        self.clock = _Clock(loop)
        self.shape = Shape(args.customers, args.locations, args.users)
        self.interval = timedelta(seconds=args.interval)
        self.samples: list[Sample] = []
        self.results = 0
        self.lateness: list[float] = []
        self.began = time.perf_counter()
        self.errors = _ErrorCount()
        self.traced: tracemalloc.Snapshot | None = None
        self.traced_once = False

    # results and people

    def counted(self, pipeline: Pipeline) -> Callable[[list[ProbeResult]], Awaitable[None]]:
        async def sink(batch: list[ProbeResult]) -> None:
            self.results += len(batch)
            try:
                await pipeline.on_results(batch)
            except Exception:  # as ctiwatch run: one bad step must not stop the probes
                log.exception("handling probe results failed")

        return sink

    def agent_sink(
        self, agent: str, receiver: Receiver, sink: Callable[[list[ProbeResult]], Awaitable[None]]
    ) -> Callable[[list[ProbeResult]], Awaitable[None]]:
        topic = Topics(Config().mqtt.topic_prefix).results(agent)

        async def deliver(batch: list[ProbeResult]) -> None:
            now = self.clock.now()
            intake = receiver.receive(topic, encode_results(agent, now, batch), now)
            if intake.results:
                await sink(intake.results)

        return deliver

    async def person(self, pipeline: Pipeline) -> None:
        """Acknowledges every incident left unacknowledged for :data:`ACK_AFTER`."""
        monitor = pipeline.monitor
        while True:
            await self.clock.sleep(300)
            now = self.clock.now()
            for incident in monitor.engine.open_incidents():
                if incident.acknowledged_at is None and now - incident.opened_at >= ACK_AFTER:
                    number = incident.number
                    with contextlib.suppress(IncidentError, StepFailed):
                        await pipeline.act(
                            lambda at, n=number: monitor.acknowledge(n, at, PERSON)  # type: ignore[misc]
                        )

    async def send(self, sender: OutboxSender, pipeline: Pipeline) -> None:
        """``ctiwatch run``'s outbox loop."""
        ready = pipeline.outbox_ready
        while True:
            ready.clear()
            try:
                reports = await sender.send_due()
            except Exception:
                log.exception("sending alerts failed")
                reports = []
            if len(reports) >= 20:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await ready.wait()

    async def retention(self, store: Store) -> None:
        while True:
            await self.clock.sleep(3600)
            await store.apply_retention(self.clock.now())

    async def sample(self, phase: int, every: float, origin: datetime) -> None:
        while True:
            self.take_sample(phase, origin)
            await self.clock.sleep(every)

    def trace_growth(self) -> None:
        """With ``--tracemalloc``: where memory grew since the end of phase 1's warm-up."""
        if self.traced is None:
            return
        grown = tracemalloc.take_snapshot().compare_to(self.traced, "lineno")
        print("memory grown after warm-up, by line (tracemalloc):", file=sys.stderr)
        for stat in grown[:20]:
            print(f"  {stat}", file=sys.stderr)
        self.traced = None

    def take_sample(self, phase: int, origin: datetime) -> None:
        now = self.clock.now()
        if (
            self.args.tracemalloc
            and phase == 1
            and self.traced is None
            and not self.traced_once
            and now - origin >= timedelta(hours=self.args.hours * WARMUP_FRACTION)
        ):
            self.traced = tracemalloc.take_snapshot()
            self.traced_once = True
        self.samples.append(
            Sample(
                phase,
                now.isoformat(timespec="seconds"),
                (now - origin) / timedelta(hours=1),
                round(time.perf_counter() - self.began, 1),
                round(rss_mb(), 1),
                self.results,
            )
        )
        if self.args.verbose:
            print(f"  {asdict(self.samples[-1])}", file=sys.stderr, flush=True)

    def timed(self, probe: Probe, origin: datetime, holder: list[Scheduler]) -> Probe:
        """The probe, noting how late its round started (phase 2)."""
        offsets: dict[TargetKey, timedelta] = {}
        clock, interval, lateness = self.clock, self.interval, self.lateness

        async def run(target: ProbeTarget, transport: Transport, ctx: ProbeContext) -> ProbeResult:
            began = clock.now()
            offset = offsets.get(target.key)
            if offset is None:
                offset = offsets[target.key] = holder[0].offset(target.key)
            first = origin + offset
            due = first + ((began - first) // interval) * interval
            lateness.append((began - due).total_seconds())
            return await probe(target, transport, ctx)

        return run

    # the whole run

    async def run(self, scenario: Scenario, report: Report) -> None:
        args, loop, clock = self.args, self.loop, self.clock
        logging.getLogger().addHandler(self.errors)
        twilio = FakeTwilio(
            account_sid="ACfake00000000000000000000000000000",
            auth_token="fake-auth-token",
            webhook_base_url="http://127.0.0.1:9",
            clock=clock,
        )
        smtp = FakeSmtp()
        async with contextlib.AsyncExitStack() as stack:
            await twilio.start()
            stack.push_async_callback(twilio.stop)
            await smtp.start()
            stack.push_async_callback(smtp.stop)
            config = soak_config(self.shape, self.url, self.interval, twilio, smtp)
            store = await Store.open(config.storage.url)
            stack.push_async_callback(store.close)
            _hold_database(store, loop)
            monitor = await restore_monitor(config, store, clock)
            metrics = Metrics(clock)
            metrics.watch(monitor)
            pipeline = Pipeline(monitor, store, clock, on_results=metrics.observe)
            sink = self.counted(pipeline)
            core = SimulatorCore(
                config.probes.api_token, users_from_topology(config.topology.customers)
            )
            core.faults = fault_plan(scenario)
            targets = targets_from_config(config)
            receiver = Receiver(
                config.topology, Topics(config.mqtt.topic_prefix), AgentTracker(self.interval)
            )
            opened = await stack.enter_async_context(open_channels(config.alerting, now=clock.now))
            channels = {name: _Held(channel, loop) for name, channel in opened.items()}
            sender = OutboxSender(
                store.outbox,
                channels,
                clock,
                worker=this_process(),
                oncall=lambda now: on_call(monitor.rotation, now),
            )
            supervisor = Supervisor(clock)
            keep = supervisor.keep
            start, end = scenario.start.astimezone(UTC), scenario.end.astimezone(UTC)

            def schedulers(
                spread: bool, probes: Callable[[list[Scheduler]], dict[str, Probe]] | None = None
            ) -> list[Scheduler]:
                made: list[Scheduler] = []
                central_probes = PROBES if probes is None else probes(made)
                made.append(
                    Scheduler(
                        targets,
                        SimulatorTransport(core, clock, random.Random(1)),
                        context_from_config(config.probes, clock, random_ids),
                        interval=self.interval,
                        on_results=sink,
                        concurrency=len(targets) if not spread else config.probes.concurrency,
                        spread=spread,
                        deadline=math.inf if not spread else None,
                        probes=central_probes,
                    )
                )
                for agent in scenario.agents:
                    wanted = set(agent.locations)
                    made.append(
                        Scheduler(
                            [t for t in targets if t.key.location in wanted],
                            SimulatorTransport(
                                core, clock, random.Random(agent.id), source=agent.id
                            ),
                            context_from_config(config.probes, clock, random_ids),
                            interval=self.interval,
                            on_results=self.agent_sink(agent.id, receiver, sink),
                            concurrency=config.probes.concurrency,
                            spread=spread,
                            deadline=math.inf if not spread else None,
                        )
                    )
                return made

            async with asyncio.TaskGroup() as tasks:
                background = [
                    tasks.create_task(keep("timers", pipeline.timers)),
                    tasks.create_task(keep("outbox", lambda: self.send(sender, pipeline))),
                    tasks.create_task(keep("person", lambda: self.person(pipeline))),
                    tasks.create_task(keep("retention", lambda: self.retention(store))),
                ]
                gc.collect()
                gc.freeze()  # as ctiwatch run does once everything is built

                # Phase 1: virtual time.
                print(
                    f"phase 1: {len(targets):,} targets every {args.interval:g} s, "
                    f"{args.hours:g} simulated hours from {start.isoformat()}",
                    file=sys.stderr,
                    flush=True,
                )
                sampler = tasks.create_task(self.sample(1, SAMPLE_VIRTUAL.total_seconds(), start))
                cpu = time.process_time()
                first = schedulers(spread=False)
                await asyncio.gather(*(s.run(start=start, until=end) for s in first))
                await clock.sleep_until(end)
                sampler.cancel()
                self.take_sample(1, start)
                self.trace_growth()
                report.phase1_wall_s = round(time.perf_counter() - self.began, 1)
                report.cpu_phase1_s = round(time.process_time() - cpu, 1)
                report.results_phase1 = self.results
                report.skipped_rounds = sum(s.stats.skipped for s in first)

                # Phase 2: real time, the web under load.
                loop.go_real()
                origin = clock.now()
                cpu = time.process_time()
                print(
                    f"phase 2: {args.minutes:g} real minutes, web under load by "
                    f"{args.clients} clients (phase 1 took {report.phase1_wall_s:g} s)",
                    file=sys.stderr,
                    flush=True,
                )
                console = ConsoleServiceImpl(config, pipeline)
                background.append(tasks.create_task(settle(console)))  # as ctiwatch run does
                accounts = Accounts(store, clock)
                token, _ = await accounts.create_token("soak", "viewer", by="bench")
                web_app = build_web_app(
                    console,
                    accounts=accounts,
                    metrics_registry=metrics.registry,
                    health=supervisor.problems,
                    tz=config.sla.timezone,
                )
                from aiohttp import web

                runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=1.0)
                await runner.setup()
                stack.push_async_callback(runner.cleanup)
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                web_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
                seconds = args.minutes * 60
                until = origin + timedelta(seconds=seconds)
                sampler = tasks.create_task(self.sample(2, SAMPLE_REAL_SECONDS, origin))
                stalls = StallSampler() if args.stalls else None
                watcher = tasks.create_task(stalls.heartbeat()) if stalls else None
                self.lateness.clear()
                second = schedulers(
                    spread=True,
                    probes=lambda holder: {
                        kind: self.timed(p, origin, holder) for kind, p in PROBES.items()
                    },
                )
                load = await asyncio.create_subprocess_exec(
                    sys.executable,
                    WEBLOAD,
                    web_url,
                    "--seconds",
                    str(seconds),
                    "--clients",
                    str(args.clients),
                    "--token",
                    token,
                    stdout=subprocess.PIPE,
                )
                running = [tasks.create_task(s.run(start=origin, until=until)) for s in second]
                out, _ = await load.communicate()
                await asyncio.gather(*running)
                sampler.cancel()
                if stalls is not None and watcher is not None:
                    watcher.cancel()
                    stalls.print()
                self.take_sample(2, origin)
                report.cpu_phase2_s = round(time.process_time() - cpu, 1)
                report.views_built = console.builds
                report.phase2_wall_s = round((clock.now() - origin).total_seconds(), 1)
                report.web = json.loads(out.decode() or "{}")
                report.rounds_phase2 = len(self.lateness)
                report.skipped_rounds += sum(s.stats.skipped for s in second)

                # Let the last alerts go out, then stop.
                await sender.send_due()
                for task in background:
                    task.cancel()

            incidents = monitor.engine.incidents()
            report.incidents = len(incidents)
            report.incidents_open = sum(i.is_open for i in incidents)
            rows = await store.outbox.list(limit=1_000_000)
            report.alerts = dict(sorted(Counter(row.status for row in rows).items()))
            report.alerts["total"] = len(rows)
            report.fake_twilio = {
                "sms": len(twilio.messages),
                "calls": len(twilio.calls),
                "duplicates": len(twilio.duplicates),
            }
            report.fake_mails = len(smtp.messages)
            report.errors_logged = self.errors.count
        logging.getLogger().removeHandler(self.errors)


# --- databases ------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(pg: str | None, keep: bool) -> Iterator[str]:
    """A fresh database: a SQLite file in a temporary folder, or a new PostgreSQL database on
    the server of ``pg`` (dropped afterwards unless ``keep``)."""
    if pg is None:
        folder = tempfile.mkdtemp(prefix="ctiwatch-soak-")
        path = Path(folder) / "soak.db"
        try:
            yield f"sqlite+aiosqlite:///{path}"
        finally:
            if keep:
                print(f"database kept: {path}", file=sys.stderr)
            else:
                for leftover in Path(folder).iterdir():
                    leftover.unlink()
                Path(folder).rmdir()
        return
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    server = make_url(pg)
    name = f"ctiwatch_soak_{os.getpid()}"
    admin = server.set(drivername="postgresql", database=server.database or "postgres")

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        if keep:
            print(f"database kept: {name}", file=sys.stderr)
        else:
            asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- entry points ---------------------------------------------------------------------------


def judge(report: Report, samples: Sequence[Sample]) -> None:
    """Each goal with its figure and whether it is met (``report.goals``); the missed ones
    also in ``report.failures``."""
    one = phase_memory([s for s in samples if s.phase == 1])
    two = phase_memory([s for s in samples if s.phase == 2])
    peak = max((s.rss_mb for s in samples), default=math.nan)
    report.memory = {"max_mb": peak, "phase1": asdict(one), "phase2": asdict(two)}
    p99 = report.lateness_ms.get("p99", math.nan)
    goals: list[tuple[str, bool | None, str]] = [
        (f"RSS at most {RSS_LIMIT_MB:g} MB", peak <= RSS_LIMIT_MB, f"max {peak:.1f} MB"),
        (
            f"phase 1: RSS flat after warm-up (slope at most "
            f"{SLOPE_TOLERANCE_MB_PER_HOUR:g} MB per simulated hour)",
            # Judged from 4 simulated hours on: a shorter phase is mostly warm-up.
            one.slope_mb_per_hour <= SLOPE_TOLERANCE_MB_PER_HOUR if report.hours >= 4 else None,
            f"{one.slope_mb_per_hour:+.2f} MB/simulated hour",
        ),
        (
            f"phase 2: RSS flat after warm-up (growth at most {GROWTH_TOLERANCE_MB:g} MB)",
            two.growth_mb <= GROWTH_TOLERANCE_MB,
            f"{two.growth_mb:+.1f} MB",
        ),
        (
            f"scheduler lateness p99 under {LATENESS_P99_GOAL_MS:g} ms",
            p99 < LATENESS_P99_GOAL_MS,
            f"p99 {p99:.1f} ms",
        ),
        ("no ERROR log line", not report.errors_logged, f"{report.errors_logged} line(s)"),
    ]
    report.goals = [{"goal": g, "met": met, "measured": m} for g, met, m in goals]
    report.failures = [f"{g}: {m}" for g, met, m in goals if met is False]


def soak(args: argparse.Namespace) -> Report:
    shape = Shape(args.customers, args.locations, args.users)
    report = Report(shape.targets, args.hours, args.minutes, "postgresql" if args.pg else "sqlite")
    # Virtual time ends where the real clock was when the run began: phase 2 carries on at
    # the real date (lagging it by phase 1's own duration).
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=args.hours)
    scenario = scenario_from_data(scenario_data(shape, start, args.hours))
    with database(args.pg, args.keep_db) as url:
        loop = SoakLoop(start)
        soaker = Soak(args, loop, url)
        try:
            with asyncio.Runner(loop_factory=lambda: loop) as runner:
                runner.run(soaker.run(scenario, report))
        finally:
            gc.unfreeze()  # the run froze what it built; a caller (the smoke test) goes on
            report.samples = [asdict(s) for s in soaker.samples]
        ordered = sorted(soaker.lateness)
        report.lateness_ms = {
            "p50": round(percentile(ordered, 0.5) * 1000, 2),
            "p99": round(percentile(ordered, 0.99) * 1000, 2),
            "max": round((ordered[-1] if ordered else math.nan) * 1000, 2),
        }
        report.results = soaker.results
        judge(report, soaker.samples)
    return report


def describe(report: Report) -> str:
    m = report.memory
    one, two = m["phase1"], m["phase2"]
    web = report.web
    lines = [
        f"soak: {report.targets:,} targets, {report.backend}, {report.hours:g} simulated hours "
        f"({report.phase1_wall_s:g} s) then {report.minutes:g} real minutes",
        f"  results: {report.results:,} ({report.results_phase1:,} in phase 1), "
        f"{report.skipped_rounds} rounds skipped",
        f"  incidents: {report.incidents} ({report.incidents_open} open at the end); outbox "
        f"{report.alerts}; fake Twilio {report.fake_twilio}, mails {report.fake_mails}",
        f"  RSS max {m['max_mb']:.1f} MB (goal <= {RSS_LIMIT_MB:g})",
        f"  phase 1 RSS: warm-up {one['warmup_mb']:.1f} MB, steady mean "
        f"{one['steady_mean_mb']:.1f}, end {one['end_mb']:.1f}, slope "
        f"{one['slope_mb_per_hour']:+.2f} MB/simulated hour "
        f"(tolerance {SLOPE_TOLERANCE_MB_PER_HOUR:g}), growth {one['growth_mb']:+.1f} MB",
        f"  phase 2 RSS: warm-up {two['warmup_mb']:.1f} MB, steady mean "
        f"{two['steady_mean_mb']:.1f}, end {two['end_mb']:.1f}, growth "
        f"{two['growth_mb']:+.1f} MB (tolerance {GROWTH_TOLERANCE_MB:g}), slope "
        f"{two['slope_mb_per_hour']:+.1f} MB/h",
        f"  scheduler lateness (phase 2, {report.rounds_phase2:,} rounds): p50 "
        f"{report.lateness_ms['p50']:.2f} ms, p99 {report.lateness_ms['p99']:.2f} ms, max "
        f"{report.lateness_ms['max']:.2f} ms (goal p99 < {LATENESS_P99_GOAL_MS:g})",
        f"  web: {web.get('requests', 0):,} requests, {web.get('requests_per_s', 0)}/s, p50 "
        f"{web.get('p50_ms')} ms, p99 {web.get('p99_ms')} ms, max {web.get('max_ms')} ms; "
        f"statuses {web.get('statuses')}, failures {web.get('failures')}",
    ]
    for path, figures in (web.get("paths") or {}).items():
        lines.append(f"    {path}: {figures}")
    requests = web.get("requests", 0)
    lines.append(
        f"  CPU: phase 1 {report.cpu_phase1_s:g} s "
        f"({report.cpu_phase1_s / report.hours if report.hours else 0:.1f} s per simulated "
        f"hour); phase 2 {report.cpu_phase2_s:g} s "
        f"({report.cpu_phase2_s / report.phase2_wall_s if report.phase2_wall_s else 0:.0%} "
        f"of a core; {report.views_built} status views built; "
        f"{report.cpu_phase2_s * 1000 / requests if requests else 0:.1f} ms per web request, "
        f"probing included)"
    )
    lines.append(f"  ERROR log lines: {report.errors_logged}")
    for goal in report.goals:
        verdict = {True: "PASS", False: "FAIL", None: "not judged"}[goal["met"]]
        lines.append(f"  goal {verdict}: {goal['goal']} ({goal['measured']})")
    lines.append(
        "  goals: met" if not report.failures else "  goals NOT met: " + "; ".join(report.failures)
    )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=50)
    p.add_argument("--locations", type=int, default=4, help="per customer")
    p.add_argument("--users", type=int, default=25, help="per location")
    p.add_argument("--interval", type=float, default=60.0, help="probe interval, seconds")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (phase 1)")
    p.add_argument("--minutes", type=float, default=10.0, help="real minutes (phase 2)")
    p.add_argument("--clients", type=int, default=4, help="concurrent web clients")
    p.add_argument(
        "--pg",
        nargs="?",
        const="postgresql://postgres@127.0.0.1:5432/postgres",
        default=None,
        help="PostgreSQL server (a fresh database is created on it); default: SQLite",
    )
    p.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    p.add_argument("--json", metavar="FILE", help="write the whole report (with samples) here")
    p.add_argument("--verbose", action="store_true", help="print every RSS sample")
    p.add_argument(
        "--tracemalloc",
        action="store_true",
        help="print where memory grew in phase 1 after warm-up (slower; RSS figures then "
        "include tracemalloc's own)",
    )
    p.add_argument(
        "--stalls",
        action="store_true",
        help="phase 2: print where the event loop stalled over 10 ms (a sampling thread)",
    )
    return p


def main(argv: Sequence[str] = ()) -> int:
    args = parser().parse_args(list(argv))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.tracemalloc:
        tracemalloc.start(1)
    load = os.getloadavg()
    print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    tuned = tune_allocator()  # as ctiwatch run does, before any thread exists
    print(f"allocator: {', '.join(tuned) or 'as the C library has it'}", flush=True)
    report = soak(args)
    print(describe(report), flush=True)
    load = os.getloadavg()
    print(f"load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=1) + "\n")
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
