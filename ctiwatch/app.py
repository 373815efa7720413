"""The composition root: everything ``ctiwatch run`` runs, built from the configuration.

:class:`Ctiwatch` opens the store (migrating it), restores the open incidents into the
:class:`~pipeline.monitor.Monitor`, and runs side by side, owned by one ``TaskGroup``:

* the probe scheduler (one ``aiohttp.ClientSession``, real clock, spread rounds), whose results
  go through :class:`~ctiwatch.persist.Pipeline` (store, classify, act, persist);
* the timers task (SLA warnings and breaches, recoveries, escalation steps, window ends);
* the outbox sender (Twilio SMS/voice and SMTP through :func:`alerting.channels.open_channels`;
  each delivery goes on the incident's timeline as ``alert_sent`` / ``alert_failed``);
* MQTT ingestion of agents' results and call events (``mqtt.enabled``): agents' results go
  through the same :class:`~ctiwatch.persist.Pipeline` as the own probes; an agent going
  offline or stale (and coming back) is stored, shown on the status page and told to on-call by
  SMS through the outbox (:mod:`alerting.internal`), never as a customer incident. An
  unreachable broker is one warning line and a note on the status page; ingestion keeps
  reconnecting with backoff and everything else runs on;
* an hourly retention task;

and serves the web console (with the Twilio webhooks, ``/metrics`` and, with
``alerting.fakes``, the fake phone and mailbox under ``/fakes``), the CloudCTI simulator
(``simulator.enabled``) and the fake Twilio and SMTP servers (``alerting.fakes``). Leaving
:meth:`Ctiwatch.run` (its ``stop`` event set) cancels the tasks and closes every server,
session and the database, in that order.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.engine import make_url

from alerting.channels import open_channels
from alerting.internal import AgentEvent, AgentPaging, agent_alert_kind
from alerting.outbox import WorkerIdentity
from alerting.rotation import on_call
from alerting.sender import DeliveryReport, OutboxSender, process_alive, this_process
from classifier.observation import CENTRAL, ProbeResult
from ctiwatch.accounts import Accounts, LoginLimiter, LookupUnavailable
from ctiwatch.clock import Clock, RealClock
from ctiwatch.config import Config
from ctiwatch.console import AgentHealthView, ConsoleServiceImpl
from ctiwatch.custpages import CustomerPagesImpl
from ctiwatch.fakes import FakeSmtp, FakeTwilio, add_fake_views
from ctiwatch.handover import Handovers
from ctiwatch.leadership import Leadership
from ctiwatch.membership import Membership
from ctiwatch.metrics import Metrics
from ctiwatch.mqtt.ingest import AgentHealth, AgentState, DeadMessage, Ingestion, Refused
from ctiwatch.mqtt.schema import encode_result
from ctiwatch.persist import RESTORED_RESOLVED, Pipeline, StepFailed, engine_windows, load_state
from ctiwatch.settings import (
    context_from_config,
    monitor_settings,
    policy_from_config,
    targets_from_config,
)
from ctiwatch.simulator import SimulatorCore, make_app
from ctiwatch.single import only_run
from ctiwatch.storage import (
    AgentRecord,
    DeadLetter,
    Store,
    TimelineEntry,
    is_transient,
)
from ctiwatch.storage.maintenance import AGENT_PAGING_KEY
from ctiwatch.supervisor import Supervisor
from ctiwatch.web.app import build_web_app
from ctiwatch.web.auth import HostAllowList, default_hosts
from ctiwatch.web.service import MqttView
from ctiwatch.web.twilio_webhooks import add_twilio_routes
from incidents.maintenance import duration_words
from pipeline.monitor import Monitor, Outcome
from probes.base import random_ids
from probes.scheduler import Scheduler
from probes.transport import AiohttpTransport, probe_session

log = logging.getLogger("ctiwatch.app")

FAKES_PREFIX = "/fakes"
RETENTION_EVERY = timedelta(hours=1)
SENDER_IDLE_SECONDS = 2.0
SENDER_BATCH = 20
STOP_DRAIN_SECONDS = 5.0  # how long a stop waits for the last probe results to be stored
_REPORT_KINDS = {"sent": "alert_sent", "failed": "alert_failed", "retry": "alert_delayed"}


def prepare_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file (``sqlite+aiosqlite:///var/ctiwatch.db``)."""
    try:
        parsed = make_url(url)
    except Exception:  # the store reports a bad URL in the user's words
        return
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)


async def restore_monitor(config: Config, store: Store, now_clock: Clock) -> Monitor:
    """A monitor holding the stored open incidents (and recently resolved ones) with their
    escalations, numbering on from the highest stored number, with the maintenance windows
    not over yet."""
    now = now_clock.now()
    stored = await load_state(store, now)
    monitor = Monitor(
        monitor_settings(config),
        policy_from_config(config.sla),
        incidents=stored.incidents,
        next_number=stored.next_number,
        maintenance=engine_windows(stored.windows),
        escalations=stored.escalations,
        keep_resolved=RESTORED_RESOLVED,  # as many as a restart loads: memory stays bounded
        held=stored.held,
    )
    monitor.resume(now)
    restored = [i.number for i in stored.incidents if i.is_open]
    if restored:
        log.info("open incidents restored", extra={"incidents": restored})
    return monitor


def _agent_view(state: AgentState, ingestion: Ingestion) -> AgentHealthView:
    health = state.health.value
    return AgentHealthView(
        state.name,
        "stale" if health == "stale" else "offline" if health == "offline" else "online",
        state.last_seen,
        results=ingestion.results_from(state.name),
        locations=ingestion.locations_of(state.name),
        reason=state.reason,  # the console shows it only when not online
    )


def _agent_views(ingestion: Ingestion) -> list[AgentHealthView]:
    return [_agent_view(a, ingestion) for a in ingestion.agents()]


def _mqtt_view(ingestion: Ingestion) -> MqttView:
    if ingestion.subscribed.is_set():
        return MqttView(ingestion.broker, "connected")
    if ingestion.broker_problem is not None:
        return MqttView(ingestion.broker, "unreachable", ingestion.broker_problem)
    return MqttView(ingestion.broker, "connecting")


async def _admin_token(accounts: Accounts, request: web.Request) -> bool:
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    try:
        token = await accounts.token(secret.strip()) if scheme.lower() == "bearer" else None
    except LookupUnavailable:
        return False
    return token is not None and token.role == "admin"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def settle(console: ConsoleServiceImpl) -> None:
    """The read model's first load (the stored results of its window) as soon as the service
    runs, not on the first visitor's request; what it built lives for the run, so it goes
    out of the cyclic collector's full passes too (``gc.freeze``, as at start-up): at 10,000
    targets a full pass over it paused the loop for ~100 ms."""
    try:
        await console.status()
    except Exception as exc:  # the database away: the first request loads it instead
        log.warning("the read model's first load failed (%s); the first request loads it", exc)
        return
    gc.freeze()


class Ctiwatch:
    """``await Ctiwatch(config).run(stop)`` runs until ``stop`` is set. While it runs (after
    :attr:`ready` is set) its parts are attributes, for the tests and the start-up line."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or RealClock()
        self.ready = asyncio.Event()
        # Restarts every long-lived task that fails, and says so on /healthz.
        self.supervisor = Supervisor(self.clock)
        self.metrics = Metrics(self.clock)
        self.store: Store | None = None
        self.monitor: Monitor | None = None
        self.pipeline: Pipeline | None = None
        self.console: ConsoleServiceImpl | None = None
        self.accounts: Accounts | None = None
        self.ingestion: Ingestion | None = None
        self.fake_twilio: FakeTwilio | None = None
        self.fake_smtp: FakeSmtp | None = None
        self.web_url = ""
        self.simulator_url = ""
        # Each agent's last known health (``online``/``offline``/``stale``), from the store at
        # start: what an agent's change is compared with to decide whether on-call is told.
        self._agent_health: dict[str, str] = {}
        # Several workers (PostgreSQL): the lease that makes this one the active monitor.
        self.identity: WorkerIdentity = this_process(config.alerting.node)
        self.leadership: Leadership | None = None
        # Several workers: this worker's heartbeat and its share of the targets to probe.
        self.membership: Membership | None = None
        self._storing_probes: set[asyncio.Task[None]] = set()  # probe batches being stored
        self.handovers: Handovers | None = None
        self.metrics.watch_leader(lambda: self.leadership)

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        prepare_sqlite_folder(config.storage.url)
        with only_run(config.storage.url):
            await self._run(stop)

    async def _run(self, stop: asyncio.Event) -> None:
        config = self.config
        async with AsyncExitStack() as stack:
            store = self.store = await Store.open(config.storage.url)
            stack.push_async_callback(store.close)
            leadership: Leadership | None = None
            if store.dialect == "postgresql":
                leadership = self.leadership = Leadership(
                    store.leader,
                    self.clock,
                    str(self.identity),
                    lease=config.workers.lease,
                    renew_every=config.workers.renew_every,
                    gone=self._earlier_life,
                )
                # Before anything reads the incidents: if this worker can lead at once (the only
                # one, or the holder is an earlier life of this node), it starts as the leader.
                await leadership.try_once()
                stack.push_async_callback(leadership.release)
            monitor = self.monitor = await restore_monitor(config, store, self.clock)
            self.metrics.watch(monitor)
            pipeline = self.pipeline = Pipeline(
                monitor,
                store,
                self.clock,
                on_results=self.metrics.observe,
                transient=is_transient,
                backlog=config.storage.backlog,
                retry_interval=config.storage.retry_interval,
                park=self._park_results,
                leadership=leadership,
            )
            self.metrics.watch_backlog(pipeline)
            if config.mqtt.enabled:
                self.ingestion = Ingestion(
                    config.mqtt,
                    config.topology,
                    pipeline.on_results,
                    clock=self.clock,
                    agent_interval=config.probes.interval,
                    on_agent_change=self._agent_changed,
                    park=self._park,
                    transient=is_transient,
                    park_messages=self._park_messages,
                )
                self.metrics.watch_ingestion(self.ingestion)
            ingestion = self.ingestion
            agents: Callable[[], list[AgentHealthView]] | None = None
            mqtt: Callable[[], MqttView] | None = None
            if ingestion is not None:
                await self._restore_agents(store, ingestion)
                agents = partial(_agent_views, ingestion)
                mqtt = partial(_mqtt_view, ingestion)
            handovers: Handovers | None = None
            if leadership is not None:
                # People's actions reaching a worker that does not lead go to the one that does.
                handovers = self.handovers = Handovers(
                    store, self.clock, leadership, wait=config.workers.handover_wait
                )
            console = self.console = ConsoleServiceImpl(
                config, pipeline, agents=agents, mqtt=mqtt, handovers=handovers
            )
            customer_pages = CustomerPagesImpl(config, pipeline, console)

            accounts = self.accounts = Accounts(
                store,
                self.clock,
                session_lifetime=config.web.session_lifetime,
                limiter=LoginLimiter(
                    self.clock, config.web.login_max_failures, config.web.login_window
                ),
            )
            await self._first_admin(accounts)
            if config.simulator.enabled:
                core = SimulatorCore.from_config(config)
                # Its fault admin API is one of the demo fakes: there only with them, for admins.
                simulator = make_app(
                    core,
                    self.clock,
                    random.Random(),
                    admin_api=config.alerting.fakes,
                    admin_allowed=partial(_admin_token, accounts),
                )
                port = await self._serve(
                    stack, simulator, config.simulator.host, config.simulator.port
                )
                self.simulator_url = _url(config.simulator.host, port)
            if config.alerting.fakes:
                self.fake_twilio = FakeTwilio.from_settings(config.alerting.twilio, self.clock)
                await self.fake_twilio.start()
                stack.push_async_callback(self.fake_twilio.stop)
                smtp = config.alerting.smtp
                self.fake_smtp = FakeSmtp(host=smtp.host, port=smtp.port)
                await self.fake_smtp.start()
                stack.push_async_callback(self.fake_smtp.stop)
            hosts = HostAllowList(config.web.hosts or default_hosts(config.web.port))
            web_app = build_web_app(
                console,
                accounts=accounts,
                hosts=hosts,
                https=config.web.https,
                metrics_registry=self.metrics.registry,
                health=self.problems,
                role=self.role,
                versions=pipeline.version,
                customers=customer_pages,
                tz=config.sla.timezone,
                maintenance_notice=(
                    duration_words(config.maintenance.min_notice),
                    duration_words(config.maintenance.reminder_before),
                ),
                extra_routes=self._extra_routes,
                nav_links=(
                    [("Fake phone", f"{FAKES_PREFIX}/phone"), ("Mailbox", f"{FAKES_PREFIX}/mail")]
                    if config.alerting.fakes
                    else []
                ),
            )
            port = await self._serve(stack, web_app, config.web.host, config.web.port)
            self.web_url = _url(config.web.host, port)
            if config.web.hosts is None and port != config.web.port:
                hosts.set(default_hosts(port))  # port 0: the one the system gave

            connector = aiohttp.TCPConnector(limit=config.probes.concurrency)
            session = await stack.enter_async_context(probe_session(connector))
            channels = await stack.enter_async_context(
                open_channels(config.alerting, now=self.clock.now)
            )
            targets = targets_from_config(config)
            membership: Membership | None = None
            if leadership is not None:
                # The workers share the probing: each target is this worker's or another's
                # (rendezvous hashing over the live workers), on the same instants everywhere.
                membership = self.membership = Membership(
                    store.members,
                    self.clock,
                    str(self.identity),
                    [t.key for t in targets],
                    lease=config.workers.lease,
                    renew_every=config.workers.renew_every,
                    address=self.web_url,
                    gone=self._earlier_life,
                )
                await membership.beat()  # the workers already running, before the first round
                stack.push_async_callback(membership.leave)
            scheduler = Scheduler(
                targets,
                AiohttpTransport(session),
                context_from_config(config.probes, self.clock, random_ids),
                interval=config.probes.interval,
                on_results=self._probe_results,
                concurrency=config.probes.concurrency,
                spread=True,
                share=None if membership is None else membership.mine,
                aligned=membership is not None,
            )
            sender = OutboxSender(
                store.outbox,
                channels,
                self.clock,
                worker=this_process(config.alerting.node),
                batch=SENDER_BATCH,
                oncall=lambda now: on_call(monitor.rotation, now),
                on_report=self._delivered,
            )
            keep = self.supervisor.keep
            async with asyncio.TaskGroup() as tasks:
                running = [
                    tasks.create_task(keep("probes", scheduler.run), name="probes"),
                    tasks.create_task(
                        keep("outbox", partial(self._send, sender, store, pipeline)), name="outbox"
                    ),
                ]
                # Every worker keeps its results while the database is away, and stores them
                # when it answers again (only the active monitor applies them).
                running.append(
                    tasks.create_task(keep("catch-up", pipeline.catch_up), name="catch-up")
                )
                if leadership is None:
                    running += [
                        tasks.create_task(keep("timers", pipeline.timers), name="timers"),
                        tasks.create_task(
                            keep("retention", partial(self._retention, store)), name="retention"
                        ),
                    ]
                else:
                    leadership.address = self.web_url
                    running += [
                        tasks.create_task(keep("lease", leadership.run), name="lease"),
                        tasks.create_task(self._roles(leadership, pipeline, store), name="roles"),
                    ]
                if membership is not None:
                    running.append(
                        tasks.create_task(keep("membership", membership.run), name="membership")
                    )
                if ingestion is not None:
                    running.append(tasks.create_task(keep("mqtt", ingestion.run), name="mqtt"))
                if self.fake_twilio is not None:
                    # The demo phone's messages and calls move on (sent, delivered, ringing...)
                    # and report each change to /twilio/status, as Twilio does.
                    running.append(
                        tasks.create_task(
                            keep("fake twilio", self.fake_twilio.run), name="fake twilio"
                        )
                    )
                self._announce()
                # Everything built at start-up lives for the whole run: keep it out of the
                # cyclic collector's full passes, whose pauses would otherwise delay probe
                # rounds (see the scheduler lateness benchmark in docs/benchmarks.md).
                gc.freeze()
                running.append(tasks.create_task(settle(console), name="read model"))
                self.ready.set()
                try:
                    await stop.wait()
                finally:
                    log.info("ctiwatch stopping")
                    for task in running:
                        task.cancel()
            # A round's results handed over just before the stop are stored (or kept, the
            # database away) before the store closes, not lost with the cancelled probes.
            if self._storing_probes:
                await asyncio.wait(set(self._storing_probes), timeout=STOP_DRAIN_SECONDS)
        log.info("ctiwatch stopped")

    def role(self) -> str:
        """What this worker is: ``single`` (SQLite, one process), ``leader`` (the active
        monitor) or ``follower``; for ``/healthz`` (``X-Ctiwatch-Role``) and the logs."""
        leadership = self.leadership
        if leadership is None:
            return "single"
        lease = leadership.lease
        if lease is None:
            return "follower"
        return f"leader; generation={lease.generation}"

    def _earlier_life(self, holder: str) -> bool:
        """Whether lease ``holder`` is an earlier life of this node whose process is gone."""
        return self.identity.left_by_earlier_life(holder, process_alive)

    async def _roles(self, leadership: Leadership, pipeline: Pipeline, store: Store) -> None:
        """Forever: while this worker leads, run the monitor's own tasks (timers, reading the
        results the other workers stored, people's actions they took in, retention), from the
        state as stored when it took over; while another leads, read the incidents back for
        the pages. A change of role cancels the one and starts the other."""
        workers = self.config.workers
        keep = self.supervisor.keep
        lookback = self.config.probes.interval * (self.config.classification.failed_rounds + 1)
        first = True
        while True:
            async with asyncio.TaskGroup() as tasks:
                if leadership.leading:
                    if not first:
                        await pipeline.reload()  # as the previous leader left it
                    # A takeover reads the last rounds again, so the classifier goes on from
                    # where the previous leader's was; a start reads only the latest round.
                    back = self.config.probes.interval if first else lookback
                    running = [
                        tasks.create_task(keep("timers", pipeline.timers)),
                        tasks.create_task(
                            keep("results", partial(pipeline.lead, workers.poll, back))
                        ),
                        tasks.create_task(keep("retention", partial(self._retention, store))),
                    ]
                    if self.handovers is not None and self.console is not None:
                        serve = partial(self.handovers.serve, self.console.apply_handover)
                        running.append(tasks.create_task(keep("handovers", serve)))
                    log.info("running as the active monitor", extra={"role": self.role()})
                else:
                    running = [
                        tasks.create_task(keep("follow", partial(pipeline.follow, workers.poll)))
                    ]
                    log.info(
                        "running as a worker beside the active monitor",
                        extra={"role": self.role()},
                    )
                first = False
                was = leadership.leading
                while leadership.leading == was:
                    await leadership.wait_change()
                for task in running:
                    task.cancel()
            pipeline.outbox_ready.set()

    def problems(self) -> list[str]:
        """What ``/healthz`` reports: components down, and the database while it is away."""
        database = self.pipeline.problems() if self.pipeline is not None else []
        return database + self.supervisor.problems()

    # --- wiring --------------------------------------------------------------------------------

    async def _serve(
        self, stack: AsyncExitStack, app: web.Application, host: str, port: int
    ) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from exc
        return int(runner.addresses[0][1])

    async def _first_admin(self, accounts: Accounts) -> None:
        """The demo admin the configuration names, or a one-time admin password printed once
        when there is no user at all."""
        demo = self.config.web.demo_admin
        if demo is not None:
            await accounts.ensure_admin(demo.username, demo.password)
            if demo.phone:
                user = await accounts.user(demo.username)
                if user is not None and user.phone is None:
                    await accounts.set_phone(demo.username, demo.phone, by="ctiwatch")
            return
        one_time = await accounts.ensure_admin(None, None)
        if one_time is not None:
            log.warning(
                "no user yet: created user 'admin' with the one-time password %s ; log in and "
                "set your own with `ctiwatch users passwd admin`",
                one_time,
            )

    def _extra_routes(self, app: web.Application) -> None:
        console, store, accounts = self.console, self.store, self.accounts
        assert console is not None and store is not None and accounts is not None
        add_twilio_routes(
            app,
            console,
            self.config.alerting,
            replays=store.webhook_replays,
            clock=self.clock,
            people=accounts.person_with_phone,
        )
        if self.fake_twilio is None and self.fake_smtp is None:
            return
        add_fake_views(
            app,
            self.fake_twilio,
            self.fake_smtp,
            prefix=FAKES_PREFIX,
            oncall=list(self.config.alerting.oncall),
            tz=self.config.sla.timezone,
        )
        # The README promises /fakes/mail: the mailbox under a second name.
        for route in list(app.router.routes()):
            resource = route.resource
            if route.method != "GET" or resource is None:
                continue
            if resource.canonical == f"{FAKES_PREFIX}/mailbox":
                app.router.add_get(f"{FAKES_PREFIX}/mail", route.handler)
            elif resource.canonical == f"{FAKES_PREFIX}/mailbox.json":
                app.router.add_get(f"{FAKES_PREFIX}/mail.json", route.handler)

    def _announce(self) -> None:
        parts = [f"status page {self.web_url}/", f"metrics {self.web_url}/metrics"]
        if self.fake_twilio is not None:
            parts.append(f"fake phone {self.web_url}{FAKES_PREFIX}/phone")
        if self.fake_smtp is not None:
            parts.append(f"mailbox {self.web_url}{FAKES_PREFIX}/mail")
        if self.simulator_url:
            parts.append(f"CloudCTI simulator {self.simulator_url}")
        log.info(
            ", ".join(parts),
            extra={"storage": self.store.url if self.store is not None else ""},
        )

    # --- tasks ---------------------------------------------------------------------------------

    async def _probe_results(self, batch: list[ProbeResult]) -> None:
        pipeline = self.pipeline
        assert pipeline is not None
        # In a task of its own, shielded: stopping cancels the probes, not a batch being stored.
        storing = asyncio.create_task(self._handle_probe_results(pipeline, batch))
        self._storing_probes.add(storing)
        storing.add_done_callback(self._storing_probes.discard)
        await asyncio.shield(storing)

    @staticmethod
    async def _handle_probe_results(pipeline: Pipeline, batch: list[ProbeResult]) -> None:
        try:
            await pipeline.on_results(batch)
        except Exception:
            # One bad step must not stop the probes; the next round carries on.
            log.exception("handling probe results failed", extra={"results": len(batch)})

    async def _park(self, refused: list[Refused]) -> None:
        """Results the store refused, parked as dead letters (shown in the console)."""
        store = self.store
        assert store is not None
        now = self.clock.now()
        await store.dead_letters.add_many(
            [
                DeadLetter(now, "mqtt", item.result.result_id, item.reason, item.payload)
                for item in refused
            ]
        )
        self.metrics.dead_letters.labels("mqtt").inc(len(refused))
        if self.pipeline is not None:
            self.pipeline.version.bump()  # the status page lists the latest dead letters

    async def _park_messages(self, dead: list[DeadMessage]) -> None:
        """MQTT messages rejected for a reason a person must look at (an agent publishing
        under another's name), parked as dead letters by their topic."""
        store = self.store
        assert store is not None
        now = self.clock.now()
        await store.dead_letters.add_many(
            [DeadLetter(now, "mqtt", item.topic, item.reason, item.payload) for item in dead]
        )
        self.metrics.dead_letters.labels("mqtt").inc(len(dead))
        if self.pipeline is not None:
            self.pipeline.version.bump()  # the status page lists the latest dead letters

    async def _park_results(self, refused: list[tuple[ProbeResult, str]]) -> None:
        """Results the store refused while catching up with it (kept while it was away)."""
        store = self.store
        assert store is not None
        now = self.clock.now()
        for result, reason in refused:
            source = "probes" if result.source_id == CENTRAL else "mqtt"
            payload = encode_result(result).decode()
            await store.dead_letters.add_many(
                [DeadLetter(now, source, result.result_id, reason, payload)]
            )
            self.metrics.dead_letters.labels(source).inc()

    async def _send(self, sender: OutboxSender, store: Store, pipeline: Pipeline) -> None:
        ready = pipeline.outbox_ready
        try:
            # What this node's earlier life left claimed goes out now, not after its lease.
            await sender.recover()
        except Exception:
            log.exception("reclaiming alerts left by an earlier run failed")
        while True:
            ready.clear()
            try:
                reports = await sender.send_due()
                pending = await store.outbox.list(status="pending", limit=100_000)
                self.metrics.outbox_pending.set(len(pending))
            except Exception:
                log.exception("sending alerts failed")
                reports = []
            if len(reports) >= SENDER_BATCH:
                continue
            try:
                async with asyncio.timeout(SENDER_IDLE_SECONDS):
                    await ready.wait()
            except TimeoutError:
                pass

    async def _delivered(self, report: DeliveryReport) -> None:
        """A delivery outcome on the incident's timeline (a message that could not be sent
        counted on ``/metrics`` too)."""
        self.metrics.delivered(report)
        if report.incident is None or self.store is None:
            return
        entry = TimelineEntry(
            incident_number=report.incident,
            at=report.at,
            kind=_REPORT_KINDS.get(report.outcome, "alert_failed"),
            detail=report.describe(),
        )
        try:
            async with self.store.transaction() as tx:
                await tx.timeline.add(entry)
        except Exception:
            log.exception("delivery report not stored", extra={"incident": report.incident})

    async def _retention(self, store: Store) -> None:
        probes = self.config.probes
        while True:
            try:
                deleted = await store.apply_retention(
                    self.clock.now(),
                    raw=probes.raw_retention,
                    rollups=probes.rollup_retention,
                    outbox=self.config.alerting.outbox_retention,
                )
                if any(deleted.values()):
                    log.info("retention applied", extra=deleted)
            except Exception:
                log.exception("retention failed")
            await self.clock.sleep(RETENTION_EVERY.total_seconds())

    async def _restore_agents(self, store: Store, ingestion: Ingestion) -> None:
        """What was known of the agents before a restart: their retained status is no news
        (no second alert), their results count on. An agent stored as online gets a full stale
        delay from now to be heard again."""
        now = self.clock.now()
        for record in await store.agents.list():
            meta = record.meta
            try:
                health = AgentHealth(str(meta.get("health", record.status)))
            except ValueError:
                health = AgentHealth.OFFLINE if record.status == "offline" else AgentHealth.ONLINE
            self._agent_health[record.name] = health.value
            results = meta.get("results")
            ingestion.restore_agent(
                AgentState(
                    record.name,
                    health,
                    now if health is AgentHealth.ONLINE else record.last_seen,
                    record.last_seen,
                    str(meta.get("reason") or ""),
                ),
                results if isinstance(results, int) and not isinstance(results, bool) else 0,
                [str(x) for x in meta.get("locations") or ()],
            )

    async def _agent_changed(self, state: AgentState) -> None:
        """Alert on-call if it is news (internal: no incident), then store the agent's health.

        The monitor decides who is told (:meth:`pipeline.monitor.Monitor.agent_changed`): no
        one for a retired or silenced agent (``ctiwatch agents``, read from its stored row now,
        so a decision taken while the service runs counts at once), on-call inside support
        hours, held for the digest at the next opening otherwise (unless the configuration says
        any hour). The pipeline stores the outbox and held rows of that step before the agent's
        row: a crash in between repeats the alert on the next change (the idempotency key makes
        it one message), never loses it.
        """
        store, monitor, pipeline = self.store, self.monitor, self.pipeline
        if store is None or monitor is None or pipeline is None:
            return
        health = state.health.value
        before = self._agent_health.get(state.name)
        self._agent_health[state.name] = health
        event = AgentEvent(
            agent=state.name,
            health=health,
            at=state.since,
            last_seen=state.last_seen,
            reason=state.reason,
            key_at=state.reported_at,
        )
        stored = await store.agents.get(state.name)
        decided = AgentPaging.from_dict(stored.meta.get(AGENT_PAGING_KEY) if stored else None)
        leads = self.leadership is None or self.leadership.leading
        if leads and agent_alert_kind(before, health) is not None:
            # Every worker follows the agents' status; only the active monitor tells on-call.
            muted = decided.muted(self.clock.now())
            try:
                outcome = await pipeline.act(
                    lambda now: monitor.agent_changed(event, before, now, muted=muted)
                )
            except StepFailed:
                log.exception("probe agent alert not stored", extra={"agent": state.name})
                outcome = Outcome()
            if outcome.messages or outcome.held:
                log.warning(
                    "probe agent %s: on-call told (internal, no incident)%s",
                    agent_alert_kind(before, health),
                    "" if outcome.messages else "; held for the opening of support hours",
                    extra={"agent": state.name, "health": health, "reason": state.reason},
                )
            elif muted:
                log.info(
                    "probe agent %s: nobody paged (retired or silenced)",
                    agent_alert_kind(before, health),
                    extra={"agent": state.name, "health": health},
                )
        ingestion = self.ingestion
        meta: dict[str, Any] = {"health": health, "reason": state.reason}
        if stored is not None and AGENT_PAGING_KEY in stored.meta:
            meta[AGENT_PAGING_KEY] = stored.meta[AGENT_PAGING_KEY]
        if ingestion is not None:
            meta["results"] = ingestion.results_from(state.name)
            meta["locations"] = list(ingestion.locations_of(state.name))
        await store.agents.upsert(
            AgentRecord(
                name=state.name,
                last_seen=state.last_seen,
                status="offline" if health == "offline" else "online",
                meta=meta,
            )
        )
        pipeline.version.bump()  # the pages show the agent's health


async def serve(config: Config, stop: asyncio.Event) -> None:
    """Run ctiwatch until ``stop`` is set."""
    await Ctiwatch(config).run(stop)
