"""``/metrics``: every family ctiwatch exports, in one registry, and where each comes from.

:data:`FAMILIES` is the catalogue (name, type, labels, meaning); ``docs/metrics.md`` documents it
and the Grafana dashboard (``docs/grafana-dashboard.json``) uses only what it names, both checked
by tests. Two kinds of value:

* counted as things happen: results received, probe durations, ingestion lag, alerts by
  channel and outcome, outbox failures, dead letters, HTTP requests;
* read at scrape time, from what the process holds in memory (:class:`_State`): per-target up,
  recognition ratios, each open incident's seconds to its next SLA deadline, open incidents,
  the results backlog and the database, MQTT ingestion's counters and agents, leader state.
  A scrape never queries the database and never ticks the pipeline: it only reads.

Cardinality is bounded by the configuration: per-target series are the configured topology
times the sources that probe it (the central prober and the agents); probe durations are per
service and customer (not per location or user); per-incident series exist while the incident
is open.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol
from weakref import WeakKeyDictionary

import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from classifier.observation import (
    CALL_SERVICES,
    CENTRAL,
    CHECKS,
    ProbeResult,
    Service,
    Source,
    TargetKey,
)
from classifier.windows import MinuteCounts
from ctiwatch.clock import Clock

if TYPE_CHECKING:
    from alerting.sender import DeliveryReport
    from ctiwatch.mqtt.ingest import Ingestion
    from ctiwatch.persist import Pipeline
    from incidents.model import Incident
    from pipeline.monitor import Monitor

Kind = Literal["counter", "gauge", "histogram", "info"]


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family as documented: ``name`` without the ``_total``/``_info`` suffix."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str

    @property
    def exposed(self) -> str:
        """The family's name in the text exposition (counters end in ``_total``)."""
        return {"counter": f"{self.name}_total", "info": f"{self.name}_info"}.get(
            self.kind, self.name
        )

    @property
    def samples(self) -> tuple[str, ...]:
        """The sample names a query can use."""
        if self.kind == "histogram":
            return tuple(f"{self.name}_{s}" for s in ("bucket", "count", "sum"))
        return (self.exposed,)


_TARGET = ("service", "customer", "location", "user", "source")

# --- counted as things happen ---------------------------------------------------------------------
PROBE_RESULTS = Family(
    "ctiwatch_probe_results",
    "counter",
    ("service", "ok"),
    "Results received: own probes, agents and call events",
)
PROBE_DURATION = Family(
    "ctiwatch_probe_duration_seconds",
    "histogram",
    ("service", "customer"),
    "Time a probe round took (own probes and agents, successful or not)",
)
INGESTION_LAG = Family(
    "ctiwatch_ingestion_lag_seconds",
    "histogram",
    ("source",),
    "From a result's time to the moment the monitor takes it (source: probe, agent, call)",
)
ALERTS = Family(
    "ctiwatch_alerts",
    "counter",
    ("channel", "outcome"),
    "Alert deliveries by channel and outcome (sent, failed, retry; fallback: sent as the "
    "fallback of a failed one)",
)
OUTBOX_PENDING = Family("ctiwatch_outbox_pending", "gauge", (), "Alerts waiting in the outbox")
OUTBOX_FAILED = Family(
    "ctiwatch_outbox_failed",
    "counter",
    ("channel", "cause"),
    "Outbox messages that could not be sent (given up or unsendable), by channel",
)
DEAD_LETTERS = Family(
    "ctiwatch_dead_letters",
    "counter",
    ("source",),
    "Inputs the database refused, parked in the dead-letter table",
)
HTTP_REQUESTS = Family(
    "ctiwatch_http_requests",
    "counter",
    ("method", "route", "status"),
    "HTTP requests answered by the web console and API",
)
HTTP_DURATION = Family(
    "ctiwatch_http_request_duration_seconds",
    "histogram",
    ("method", "route"),
    "Time to answer an HTTP request",
)
BUILD = Family(
    "ctiwatch_build", "info", ("version", "python"), "The running ctiwatch and Python versions"
)

# --- read at scrape time --------------------------------------------------------------------------
TARGET_UP = Family(
    "ctiwatch_target_up",
    "gauge",
    _TARGET,
    "1 unless the classification rules hold the user down for that source (failed rounds, "
    "until the recovery rounds)",
)
PROBE_SUCCESS = Family(
    "ctiwatch_probe_success",
    "gauge",
    _TARGET,
    "Whether the last round of the target from that source succeeded (1) or failed (0)",
)
RECOGNITION_CALLS = Family(
    "ctiwatch_recognition_calls",
    "gauge",
    ("service", "customer", "location", "user"),
    "Answered calls of the user in the classifier's recognition window",
)
RECOGNITION_RATIO = Family(
    "ctiwatch_recognition_ratio",
    "gauge",
    ("service", "customer", "location", "user"),
    "Recognised / answered calls of the user in the classifier's recognition window",
)
LOCATION_RECOGNITION = Family(
    "ctiwatch_location_recognition_ratio",
    "gauge",
    ("service", "customer", "location"),
    "Recognised / answered calls at the location in the classifier's recognition window",
)
CUSTOMER_RECOGNITION = Family(
    "ctiwatch_customer_recognition_ratio",
    "gauge",
    ("service", "customer"),
    "Recognised / answered calls of the customer in the classifier's recognition window",
)
DEADLINE = Family(
    "ctiwatch_incident_sla_deadline_seconds",
    "gauge",
    ("incident", "priority", "customer", "target", "deadline"),
    "Per open incident: seconds until its next SLA deadline (negative: overdue)",
)
OPEN_INCIDENTS = Family(
    "ctiwatch_open_incidents", "gauge", ("priority",), "Incidents not resolved, by priority"
)
BACKLOG = Family(
    "ctiwatch_results_backlog",
    "gauge",
    (),
    "Results waiting for the database to be reachable again",
)
BACKLOG_DROPPED = Family(
    "ctiwatch_results_backlog_dropped",
    "counter",
    (),
    "Results dropped because the backlog was full while the database was away",
)
DATABASE_UP = Family(
    "ctiwatch_database_up",
    "gauge",
    (),
    "1 while the database takes writes, 0 while it is unreachable",
)
MQTT_MESSAGES = Family(
    "ctiwatch_mqtt_messages", "counter", (), "MQTT messages received by ingestion"
)
MQTT_ACCEPTED = Family(
    "ctiwatch_mqtt_results_accepted",
    "counter",
    (),
    "Results and call events from MQTT passed on to the monitor",
)
MQTT_DUPLICATES = Family(
    "ctiwatch_mqtt_duplicates",
    "counter",
    (),
    "MQTT results dropped because their id was seen before",
)
MQTT_REJECTED = Family(
    "ctiwatch_mqtt_rejected",
    "counter",
    ("reason",),
    "MQTT messages and results rejected by ingestion, by reason",
)
MQTT_CONNECTED = Family(
    "ctiwatch_mqtt_connected",
    "gauge",
    (),
    "1 while ingestion is subscribed at the broker, 0 otherwise",
)
AGENTS = Family(
    "ctiwatch_agents", "gauge", ("health",), "Probe agents known, by health (online/stale/offline)"
)
LEADER = Family(
    "ctiwatch_leader",
    "gauge",
    (),
    "1 while this process is the active monitor (opens incidents, pages), 0 otherwise",
)
LEADER_TAKEOVERS = Family(
    "ctiwatch_leader_takeovers", "counter", (), "Times this process became the active monitor"
)

FAMILIES: tuple[Family, ...] = (
    PROBE_RESULTS,
    PROBE_DURATION,
    INGESTION_LAG,
    ALERTS,
    OUTBOX_PENDING,
    OUTBOX_FAILED,
    DEAD_LETTERS,
    HTTP_REQUESTS,
    HTTP_DURATION,
    BUILD,
    TARGET_UP,
    PROBE_SUCCESS,
    RECOGNITION_CALLS,
    RECOGNITION_RATIO,
    LOCATION_RECOGNITION,
    CUSTOMER_RECOGNITION,
    DEADLINE,
    OPEN_INCIDENTS,
    BACKLOG,
    BACKLOG_DROPPED,
    DATABASE_UP,
    MQTT_MESSAGES,
    MQTT_ACCEPTED,
    MQTT_DUPLICATES,
    MQTT_REJECTED,
    MQTT_CONNECTED,
    AGENTS,
    LEADER,
    LEADER_TAKEOVERS,
)
# The standard process and Python families of prometheus-client, exported too (Linux).
STANDARD_SAMPLES = (
    "process_start_time_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "python_info",
)

PROBE_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
LAG_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CHANNELS = ("sms", "voice", "email")
ALERT_OUTCOMES = ("sent", "failed", "retry", "fallback")
_LAG_SOURCES = {Source.PROBE: "probe", Source.AGENT: "agent", Source.CALL: "call"}
_DEADLINES = ("response", "update", "repair")


# Counters and histograms without their ``_created`` series: half the series, no use on a
# dashboard (prometheus-client's switch is process-wide; ctiwatch has no other registry).
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


def _counter(
    family: Family, registry: prometheus_client.CollectorRegistry
) -> prometheus_client.Counter:
    return prometheus_client.Counter(family.name, family.help, family.labels, registry=registry)


def _histogram(
    family: Family, registry: prometheus_client.CollectorRegistry, buckets: tuple[float, ...]
) -> prometheus_client.Histogram:
    return prometheus_client.Histogram(
        family.name, family.help, family.labels, registry=registry, buckets=buckets
    )


def _gauge(family: Family) -> GaugeMetricFamily:
    return GaugeMetricFamily(family.name, family.help, labels=list(family.labels))


def _version() -> str:
    try:
        return metadata.version("ctiwatch")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


class HttpMetrics:
    """The web's request counter and latency histogram (``ctiwatch.web.app``'s middleware):
    one pair per registry, however many times it is asked for."""

    _of: ClassVar[WeakKeyDictionary[prometheus_client.CollectorRegistry, HttpMetrics]] = (
        WeakKeyDictionary()
    )

    def __init__(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.requests = _counter(HTTP_REQUESTS, registry)
        self.latency = _histogram(HTTP_DURATION, registry, HTTP_BUCKETS)

    @classmethod
    def of(cls, registry: prometheus_client.CollectorRegistry) -> HttpMetrics:
        found = cls._of.get(registry)
        if found is None:
            found = cls._of[registry] = cls(registry)
        return found


class Recognition:
    """Answered and recognised calls per user over the classifier's recognition window.

    The same minute buckets as the classifier's degraded rule (``classifier.windows``), so the
    location ratio shown is the one the rule judges (a person's forced resolve of a degraded
    location restarts the classifier's count, not this one).
    """

    def __init__(self, minutes: int) -> None:
        self._minutes = minutes
        self._counts: dict[TargetKey, MinuteCounts] = {}

    def add(self, result: ProbeResult) -> None:
        counts = self._counts.get(result.target)
        if counts is None:
            counts = self._counts[result.target] = MinuteCounts(self._minutes)
        counts.add(int(result.at.timestamp()) // 60, bool(result.recognised))

    def totals(self, now: datetime) -> Iterator[tuple[TargetKey, int, int]]:
        """(target, calls, recognised) of every user with calls in the window ending now."""
        minute = int(now.timestamp()) // 60
        for target, counts in self._counts.items():
            calls, recognised = counts.totals_at(minute)
            if calls:
                yield target, calls, recognised


def _key(target: TargetKey) -> tuple[str, str, str, str]:
    return (target.service.value, target.customer, target.location, target.user)


class Leading(Protocol):
    """What the leader families read: whether this process leads, and how often it took over."""

    @property
    def leading(self) -> bool: ...

    @property
    def takeovers(self) -> int: ...


def _no_leadership() -> Leading | None:
    return None


class Metrics:
    """The process's own registry (never the global default one) and what feeds it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.leadership: Callable[[], Leading | None] = _no_leadership
        registry = self.registry = prometheus_client.CollectorRegistry()
        prometheus_client.ProcessCollector(registry=registry)
        prometheus_client.PlatformCollector(registry=registry)
        prometheus_client.Info(BUILD.name, BUILD.help, registry=registry).info(
            {"version": _version(), "python": ".".join(map(str, sys.version_info[:3]))}
        )
        self.http = HttpMetrics.of(registry)
        self.results = _counter(PROBE_RESULTS, registry)
        self.probe_duration = _histogram(PROBE_DURATION, registry, PROBE_BUCKETS)
        self.ingestion_lag = _histogram(INGESTION_LAG, registry, LAG_BUCKETS)
        self.alerts = _counter(ALERTS, registry)
        self.outbox_pending = prometheus_client.Gauge(
            OUTBOX_PENDING.name, OUTBOX_PENDING.help, registry=registry
        )
        self.outbox_failed = _counter(OUTBOX_FAILED, registry)
        self.dead_letters = _counter(DEAD_LETTERS, registry)
        for channel in CHANNELS:  # shown at 0 from the start, so alert rules have a series
            for cause in ("undelivered", "unsendable"):
                self.outbox_failed.labels(channel, cause)
            for outcome in ALERT_OUTCOMES:
                self.alerts.labels(channel, outcome)
        for source in ("probes", "mqtt"):
            self.dead_letters.labels(source)
        self.monitor: Monitor | None = None
        self.pipeline: Pipeline | None = None
        self.ingestion: Ingestion | None = None
        self.recognition = Recognition(60)
        self._known: frozenset[TargetKey] = frozenset()
        self._last: dict[tuple[TargetKey, str], bool] = {}
        self._counted: dict[tuple[Service, bool], prometheus_client.Counter] = {}
        self._durations: dict[tuple[Service, str], prometheus_client.Histogram] = {}
        self._lags: dict[Source, prometheus_client.Histogram] = {}
        registry.register(_State(self))

    # --- what is watched at scrape time ---------------------------------------------------------

    def watch(self, monitor: Monitor) -> None:
        """Read ``monitor`` at scrape time; results for targets outside its topology are not
        shown per target (they never reach the classifier either)."""
        self.monitor = monitor
        self.recognition = Recognition(monitor.settings.thresholds.degraded_minutes)
        self._known = frozenset(
            TargetKey(service, customer.id, location, user)
            for customer in monitor.settings.customers
            for location, users in customer.locations.items()
            for user in users
            for service in CALL_SERVICES
        ) | frozenset(
            TargetKey(Service.HTTP, customer.id, CHECKS, check)
            for customer in monitor.settings.customers
            for check in customer.checks
        )

    def watch_leader(self, leadership: Callable[[], Leading | None]) -> None:
        """Where the leader state is read at scrape time; None (one process, SQLite): the
        process leads."""
        self.leadership = leadership

    def watch_backlog(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def watch_ingestion(self, ingestion: Ingestion) -> None:
        self.ingestion = ingestion

    # --- counted as things happen ---------------------------------------------------------------

    def observe(self, batch: list[ProbeResult]) -> None:
        """Results on their way to the monitor (stored already). On the hot path: the labelled
        children are looked up once and kept (``labels()`` validates on every call)."""
        now = self.clock.now()
        known, last, recognition = self._known, self._last, self.recognition
        counted, durations, lags = self._counted, self._durations, self._lags
        for result in batch:
            target = result.target
            ok = result.ok
            key = (target.service, ok)
            counter = counted.get(key)
            if counter is None:
                counter = counted[key] = self.results.labels(
                    target.service.value, "true" if ok else "false"
                )
            counter.inc()
            lag = lags.get(result.source)
            if lag is None:
                lag = lags[result.source] = self.ingestion_lag.labels(
                    _LAG_SOURCES.get(result.source, "probe")
                )
            lag.observe(max(0.0, (now - result.at).total_seconds()))
            if target not in known:
                continue
            if result.source is not Source.CALL:
                last[(target, result.source_id)] = ok
                place = (target.service, target.customer)
                duration = durations.get(place)
                if duration is None:
                    duration = durations[place] = self.probe_duration.labels(
                        target.service.value, target.customer
                    )
                duration.observe(max(0.0, result.latency_ms / 1000))
            if ok and result.recognised is not None:
                recognition.add(result)

    def delivered(self, report: DeliveryReport) -> None:
        """One outbox row's delivery outcome, and its fallback's."""
        self.alerts.labels(report.channel, report.outcome).inc()
        fallback = report.fallback
        if fallback is not None:
            outcome = "fallback" if fallback.outcome == "sent" else "failed"
            self.alerts.labels(fallback.channel, outcome).inc()
        if report.outcome == "failed":
            cause = "unsendable" if report.unsendable else "undelivered"
            self.outbox_failed.labels(report.channel, cause).inc()
            if fallback is not None and fallback.outcome == "failed":
                self.outbox_failed.labels(fallback.channel, "undelivered").inc()

    def last_rounds(self) -> Iterator[tuple[TargetKey, str, bool]]:
        for (target, source), ok in self._last.items():
            yield target, source, ok


class _State(Collector):
    """The families read at scrape time from what the process holds in memory."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[prometheus_client.Metric]:
        metrics = self._metrics
        now = metrics.clock.now()
        yield from self._targets(metrics.monitor)
        yield from self._recognition(now)
        yield from self._incidents(metrics.monitor, now)
        yield from self._storage(metrics.pipeline)
        yield from self._mqtt(metrics.ingestion)
        leadership = metrics.leadership()
        leading = leadership is None or leadership.leading
        yield GaugeMetricFamily(LEADER.name, LEADER.help, value=1 if leading else 0)
        yield CounterMetricFamily(
            LEADER_TAKEOVERS.name,
            LEADER_TAKEOVERS.help,
            value=0 if leadership is None else leadership.takeovers,
        )

    def _targets(self, monitor: Monitor | None) -> Iterator[GaugeMetricFamily]:
        up, success = _gauge(TARGET_UP), _gauge(PROBE_SUCCESS)
        if monitor is not None:
            states = monitor.classifier.series_down()
            for target, source, down in states:
                up.add_metric(_target_labels(target, source), 0 if down else 1)
        for target, source, ok in self._metrics.last_rounds():
            success.add_metric(_target_labels(target, source), 1 if ok else 0)
        yield up
        yield success

    def _recognition(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        calls_family, users = _gauge(RECOGNITION_CALLS), _gauge(RECOGNITION_RATIO)
        locations, customers = _gauge(LOCATION_RECOGNITION), _gauge(CUSTOMER_RECOGNITION)
        by_location: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        by_customer: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for target, calls, recognised in self._metrics.recognition.totals(now):
            labels = list(_key(target))
            calls_family.add_metric(labels, calls)
            users.add_metric(labels, recognised / calls)
            for total in (
                by_location[(labels[0], labels[1], labels[2])],
                by_customer[(labels[0], labels[1])],
            ):
                total[0] += calls
                total[1] += recognised
        for place, (calls, recognised) in by_location.items():
            locations.add_metric(list(place), recognised / calls)
        for customer, (calls, recognised) in by_customer.items():
            customers.add_metric(list(customer), recognised / calls)
        yield from (calls_family, users, locations, customers)

    def _incidents(self, monitor: Monitor | None, now: datetime) -> Iterator[GaugeMetricFamily]:
        deadlines, open_family = _gauge(DEADLINE), _gauge(OPEN_INCIDENTS)
        counts = dict.fromkeys(range(1, 5), 0)
        if monitor is not None:
            for incident in sorted(monitor.engine.open_incidents(), key=lambda i: i.number):
                priority = int(incident.priority)
                counts[priority] = counts.get(priority, 0) + 1
                due = _next_deadline(incident, now)
                if due is None:
                    continue
                name, at = due
                deadlines.add_metric(
                    [
                        str(incident.number),
                        str(priority),
                        incident.customer,
                        _incident_target(incident),
                        name,
                    ],
                    (at - now).total_seconds(),
                )
        for priority, count in sorted(counts.items()):
            open_family.add_metric([str(priority)], count)
        yield deadlines
        yield open_family

    def _storage(self, pipeline: Pipeline | None) -> Iterator[prometheus_client.Metric]:
        backlog = pipeline.backlog if pipeline is not None else None
        yield GaugeMetricFamily(
            BACKLOG.name, BACKLOG.help, value=len(backlog) if backlog is not None else 0
        )
        yield CounterMetricFamily(
            BACKLOG_DROPPED.name,
            BACKLOG_DROPPED.help,
            value=backlog.dropped if backlog is not None else 0,
        )
        down = pipeline is not None and pipeline.unreachable_since is not None
        yield GaugeMetricFamily(DATABASE_UP.name, DATABASE_UP.help, value=0 if down else 1)

    def _mqtt(self, ingestion: Ingestion | None) -> Iterator[prometheus_client.Metric]:
        rejected = CounterMetricFamily(
            MQTT_REJECTED.name, MQTT_REJECTED.help, labels=list(MQTT_REJECTED.labels)
        )
        agents = _gauge(AGENTS)
        counts = ingestion.counts if ingestion is not None else None
        for name, family, value in (
            (MQTT_MESSAGES.name, MQTT_MESSAGES, counts.messages if counts else 0),
            (MQTT_ACCEPTED.name, MQTT_ACCEPTED, counts.accepted if counts else 0),
            (MQTT_DUPLICATES.name, MQTT_DUPLICATES, counts.duplicates if counts else 0),
        ):
            yield CounterMetricFamily(name, family.help, value=value)
        if ingestion is not None:
            for reason, count in sorted(ingestion.counts.rejected.items()):
                rejected.add_metric([reason], count)
            health = dict.fromkeys(("online", "stale", "offline"), 0)
            for agent in ingestion.agents():
                health[agent.health.value] = health.get(agent.health.value, 0) + 1
            for name, count in health.items():
                agents.add_metric([name], count)
        yield rejected
        connected = ingestion is not None and ingestion.subscribed.is_set()
        yield GaugeMetricFamily(MQTT_CONNECTED.name, MQTT_CONNECTED.help, value=int(connected))
        yield agents


def _target_labels(target: TargetKey, source: str) -> list[str]:
    return [*_key(target), source or CENTRAL]


def _next_deadline(incident: Incident, now: datetime) -> tuple[str, datetime] | None:
    """The running SLA clock due first from ``now`` on; when every running one is overdue, the
    one overdue longest (negative seconds)."""
    running = [
        (clock.due, clock.name.value)
        for clock in incident.clocks.values()
        if clock.running and clock.name.value in _DEADLINES
    ]
    if not running:
        return None
    ahead = [item for item in running if item[0] >= now]
    due, name = min(ahead) if ahead else min(running)
    return name, due


def _incident_target(incident: Incident) -> str:
    """What the incident is about: its most urgent scope entry (service/location[/user]);
    empty for a question without a scope."""
    entries = incident.active_scope() or list(incident.scope.values())
    if not entries:
        return ""
    top = min(entries, key=lambda e: (e.priority, e.service.value, e.location, e.user))
    parts = [top.service.value, top.location] + ([top.user] if top.user else [])
    return "/".join(parts)
