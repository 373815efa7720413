"""What ``/metrics`` says, from results, incidents and deliveries on a fixed clock (no server).

The families and their labels are the catalogue of ``ctiwatch.metrics``; ``docs/metrics.md``
documents each of them and ``docs/grafana-dashboard.json`` uses only them (checked here); the
live service exporting exactly them is ``tests/integration/test_metrics_live.py``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from alerting.sender import DeliveryReport, FallbackReport, Outcome
from classifier.observation import CENTRAL, ProbeResult, Service, Source, TargetKey
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config, config_from_data
from ctiwatch.metrics import FAMILIES, STANDARD_SAMPLES, Metrics
from ctiwatch.settings import monitor_settings, policy_from_config
from pipeline.monitor import Monitor

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tuesday 10:00 Amsterdam: support hours
USERS = ("alice", "bob")


def config() -> Config:
    return config_from_data(
        {
            "topology": {
                "customers": [
                    {"id": "acme", "locations": [{"id": "acme-ams", "users": list(USERS)}]},
                    {"id": "globex", "locations": [{"id": "globex-utr", "users": ["frank"]}]},
                ]
            },
            "alerting": {"oncall": ["+31612345678"]},
        }
    )


def watched() -> tuple[Metrics, Monitor, FixedClock]:
    cfg = config()
    monitor = Monitor(monitor_settings(cfg), policy_from_config(cfg.sla))
    clock = FixedClock(START)
    metrics = Metrics(clock)
    metrics.watch(monitor)
    return metrics, monitor, clock


def result(
    user: str,
    at: datetime,
    *,
    ok: bool = True,
    service: Service = Service.CLICK2DIAL,
    recognised: bool | None = None,
    source: Source = Source.PROBE,
    source_id: str = CENTRAL,
    latency_ms: float = 120.0,
    customer: str = "acme",
    location: str = "acme-ams",
) -> ProbeResult:
    return ProbeResult(
        result_id=f"{service}-{user}-{source_id}-{at.isoformat()}-{recognised}",
        target=TargetKey(service, customer, location, user),
        at=at,
        ok=ok,
        recognised=recognised,
        latency_ms=latency_ms,
        status=201 if ok else 503,
        evidence="[STATUS] (201) == 201" if ok else "[STATUS] (503) == 201",
        source=source,
        source_id=source_id,
    )


def feed(metrics: Metrics, monitor: Monitor, batch: list[ProbeResult], now: datetime) -> None:
    """What the pipeline does with stored results: metrics first, then the monitor."""
    metrics.observe(batch)
    monitor.observe(batch, now)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def target(user: str, source: str = CENTRAL, service: str = "click2dial") -> dict[str, str]:
    return {
        "service": service,
        "customer": "acme",
        "location": "acme-ams",
        "user": user,
        "source": source,
    }


# --- targets -------------------------------------------------------------------------------------


def test_every_configured_target_is_up_until_the_rules_hold_it_down_for_that_source() -> None:
    metrics, monitor, clock = watched()
    # Before any result: the topology, up, for the central prober; no last round yet.
    assert value(metrics, "ctiwatch_target_up", **target("alice")) == 1.0
    frank = {**target("frank"), "customer": "globex", "location": "globex-utr"}
    assert value(metrics, "ctiwatch_target_up", **{**frank, "service": "crm"}) == 1.0
    assert value(metrics, "ctiwatch_probe_success", **target("alice")) is None

    at = START
    for minute in range(3):  # alice fails three rounds centrally; bob answers
        at = START + timedelta(minutes=minute)
        clock.set(at)
        feed(metrics, monitor, [result("alice", at, ok=False), result("bob", at)], at)
        if minute == 1:  # two failed rounds: the last one failed, not down yet
            assert value(metrics, "ctiwatch_probe_success", **target("alice")) == 0.0
            assert value(metrics, "ctiwatch_target_up", **target("alice")) == 1.0
    # An agent sees alice fine: its own series, up.
    agent = result("alice", at, source=Source.AGENT, source_id="ams-1")
    feed(metrics, monitor, [agent], at)

    assert value(metrics, "ctiwatch_target_up", **target("alice")) == 0.0
    assert value(metrics, "ctiwatch_target_up", **target("bob")) == 1.0
    assert value(metrics, "ctiwatch_target_up", **target("alice", "ams-1")) == 1.0
    assert value(metrics, "ctiwatch_probe_success", **target("alice", "ams-1")) == 1.0
    assert value(metrics, "ctiwatch_probe_success", **target("bob")) == 1.0

    # One good round is not recovery (3 needed): still down, but its last round succeeded.
    at += timedelta(minutes=1)
    feed(metrics, monitor, [result("alice", at)], at)
    assert value(metrics, "ctiwatch_probe_success", **target("alice")) == 1.0
    assert value(metrics, "ctiwatch_target_up", **target("alice")) == 0.0


def test_results_for_targets_outside_the_topology_add_no_per_target_series() -> None:
    metrics, monitor, _ = watched()
    stranger = result("mallory", START, customer="nobody", location="x")
    feed(metrics, monitor, [stranger], START)
    text = prometheus_client.generate_latest(metrics.registry).decode()
    assert "mallory" not in text
    # Still counted as a result received.
    assert value(metrics, "ctiwatch_probe_results_total", service="click2dial", ok="true") == 1.0


def test_probe_durations_are_histograms_per_service_and_customer_in_seconds() -> None:
    metrics, monitor, _ = watched()
    feed(
        metrics,
        monitor,
        [
            result("alice", START, latency_ms=40.0),
            result("bob", START, latency_ms=700.0, ok=False),
            result("alice", START, service=Service.CRM, latency_ms=2500.0),
        ],
        START,
    )
    labels = {"service": "click2dial", "customer": "acme"}
    assert value(metrics, "ctiwatch_probe_duration_seconds_count", **labels) == 2.0
    assert value(metrics, "ctiwatch_probe_duration_seconds_sum", **labels) == 0.74
    assert value(metrics, "ctiwatch_probe_duration_seconds_bucket", **labels, le="0.05") == 1.0
    assert value(metrics, "ctiwatch_probe_duration_seconds_bucket", **labels, le="1.0") == 2.0
    crm = {"service": "crm", "customer": "acme"}
    assert value(metrics, "ctiwatch_probe_duration_seconds_bucket", **crm, le="2.0") == 0.0
    assert value(metrics, "ctiwatch_probe_duration_seconds_bucket", **crm, le="3.0") == 1.0


# --- recognition ---------------------------------------------------------------------------------


def test_recognition_ratio_per_user_location_and_customer_over_the_classifiers_window() -> None:
    metrics, monitor, clock = watched()
    batch = []
    # alice: 4 calls, 3 recognised; bob: 2 calls, 1 recognised (one from the platform's events).
    for n, recognised in enumerate((True, True, True, False)):
        at = START + timedelta(minutes=n)
        batch.append(result("alice", at, service=Service.CRM, recognised=recognised))
    batch.append(result("bob", START, service=Service.CRM, recognised=True))
    batch.append(result("bob", START, service=Service.CRM, recognised=False, source=Source.CALL))
    batch.append(result("bob", START, service=Service.CRM, ok=False))  # no call: not counted
    clock.set(START + timedelta(minutes=5))
    feed(metrics, monitor, batch, clock.now())

    user = {"service": "crm", "customer": "acme", "location": "acme-ams"}
    assert value(metrics, "ctiwatch_recognition_calls", **user, user="alice") == 4.0
    assert value(metrics, "ctiwatch_recognition_ratio", **user, user="alice") == 0.75
    assert value(metrics, "ctiwatch_recognition_ratio", **user, user="bob") == 0.5
    assert value(metrics, "ctiwatch_location_recognition_ratio", **user) == 4 / 6
    assert value(
        metrics, "ctiwatch_customer_recognition_ratio", service="crm", customer="acme"
    ) == (4 / 6)

    # The window is the classifier's hour: once the calls' minutes are 60 minutes old they
    # are gone, and a ratio over no calls is not shown (not 0, not NaN).
    clock.set(START + timedelta(minutes=60))
    assert value(metrics, "ctiwatch_recognition_calls", **user, user="alice") == 3.0
    assert value(metrics, "ctiwatch_recognition_ratio", **user, user="bob") is None
    clock.set(START + timedelta(hours=2))
    assert value(metrics, "ctiwatch_location_recognition_ratio", **user) is None


# --- incidents -----------------------------------------------------------------------------------


def open_p1(metrics: Metrics, monitor: Monitor, clock: FixedClock) -> datetime:
    at = START
    for minute in range(3):
        at = START + timedelta(minutes=minute)
        feed(metrics, monitor, [result(u, at, ok=False) for u in USERS], at)
    clock.set(at)
    assert monitor.engine.incident(1).priority == 1
    return at


def test_each_open_incident_shows_the_seconds_to_its_next_sla_deadline() -> None:
    metrics, monitor, clock = watched()
    opened = open_p1(metrics, monitor, clock)
    labels = {
        "incident": "1",
        "priority": "1",
        "customer": "acme",
        "target": "click2dial/acme-ams",
    }
    clock.set(opened + timedelta(minutes=1))
    # P1: response due 4 support hours after the report (10:02 -> 14:02 Amsterdam).
    seconds = value(
        metrics, "ctiwatch_incident_sla_deadline_seconds", **labels, deadline="response"
    )
    assert seconds == 4 * 3600 - 60
    assert value(metrics, "ctiwatch_open_incidents", priority="1") == 1.0
    assert value(metrics, "ctiwatch_open_incidents", priority="3") == 0.0

    # Acknowledged: the response clock stops; the next deadline is the update's.
    monitor.acknowledge(1, opened + timedelta(minutes=1), "alice")
    assert (
        value(metrics, "ctiwatch_incident_sla_deadline_seconds", **labels, deadline="response")
        is None
    )
    update = value(metrics, "ctiwatch_incident_sla_deadline_seconds", **labels, deadline="update")
    assert update is not None and update > 0

    # Overdue (the scrape does not tick the monitor): negative seconds, still the update's.
    clock.set(opened + timedelta(days=2))
    overdue = value(metrics, "ctiwatch_incident_sla_deadline_seconds", **labels, deadline="update")
    assert overdue is not None and overdue < 0


def test_a_scrape_only_reads_the_monitor() -> None:
    metrics, monitor, clock = watched()
    opened = open_p1(metrics, monitor, clock)
    due = monitor.next_due()
    assert due is not None
    clock.set(due + timedelta(hours=1))  # an escalation step and SLA warnings are due
    before = monitor.engine.incident(1).to_dict()
    prometheus_client.generate_latest(metrics.registry)
    assert monitor.engine.incident(1).to_dict() == before
    assert monitor.next_due() == due
    assert monitor.classifier.take_changes().started == ()
    assert opened < due


# --- alerts, ingestion, the rest -----------------------------------------------------------------


def report(channel: str, outcome: Outcome, **more: Any) -> DeliveryReport:
    return DeliveryReport(
        1, f"1:opened:{channel}", 1, channel, "x", "opened", outcome, START, **more
    )


def test_alerts_are_counted_by_channel_and_outcome_with_fallbacks() -> None:
    metrics, _, _ = watched()
    assert value(metrics, "ctiwatch_alerts_total", channel="voice", outcome="fallback") == 0.0
    metrics.delivered(report("sms", "sent", provider_id="SM1"))
    metrics.delivered(report("sms", "retry", error="429"))
    metrics.delivered(
        report("voice", "failed", error="busy", fallback=FallbackReport("sms", "+316", "sent"))
    )
    metrics.delivered(
        report("voice", "failed", error="busy", fallback=FallbackReport("sms", "+316", "failed"))
    )
    counts = {
        (channel, outcome): value(
            metrics, "ctiwatch_alerts_total", channel=channel, outcome=outcome
        )
        for channel in ("sms", "voice")
        for outcome in ("sent", "failed", "retry", "fallback")
    }
    assert counts == {
        ("sms", "sent"): 1.0,
        ("sms", "failed"): 1.0,  # the second fallback
        ("sms", "retry"): 1.0,
        ("sms", "fallback"): 1.0,
        ("voice", "sent"): 0.0,
        ("voice", "failed"): 2.0,
        ("voice", "retry"): 0.0,
        ("voice", "fallback"): 0.0,
    }
    assert value(metrics, "ctiwatch_outbox_failed_total", channel="voice", cause="undelivered") == 2


def test_ingestion_lag_is_the_time_from_a_results_instant_to_the_monitor_by_source() -> None:
    metrics, monitor, clock = watched()
    clock.set(START + timedelta(seconds=90))
    feed(
        metrics,
        monitor,
        [
            result("alice", START + timedelta(seconds=89.5)),
            result("bob", START, source=Source.AGENT, source_id="ams-1"),
            result("bob", START + timedelta(seconds=95), source=Source.AGENT, source_id="ams-1"),
        ],
        clock.now(),
    )
    agent = {"source": "agent"}
    assert value(metrics, "ctiwatch_ingestion_lag_seconds_count", **agent) == 2.0
    assert value(metrics, "ctiwatch_ingestion_lag_seconds_sum", **agent) == 90.0  # ahead: 0
    assert value(metrics, "ctiwatch_ingestion_lag_seconds_bucket", source="probe", le="0.5") == 1


def test_leader_state_build_info_and_process_start_are_exported() -> None:
    metrics, _, _ = watched()
    assert value(metrics, "ctiwatch_leader") == 1.0
    assert value(metrics, "ctiwatch_leader_takeovers_total") == 0.0

    class Follower:
        leading = False
        takeovers = 2

    metrics.watch_leader(Follower)
    assert value(metrics, "ctiwatch_leader") == 0.0
    assert value(metrics, "ctiwatch_leader_takeovers_total") == 2.0
    text = prometheus_client.generate_latest(metrics.registry).decode()
    assert re.search(
        r'^ctiwatch_build_info\{python="3\.\d+\.\d+",version="[^"]+"\} 1\.0$', text, re.M
    )
    assert value(metrics, "process_start_time_seconds") is not None
    assert value(metrics, "ctiwatch_database_up") == 1.0


# --- the catalogue: documented, and what the dashboard uses --------------------------------------


def exported_samples() -> set[str]:
    return {name for family in FAMILIES for name in family.samples} | set(STANDARD_SAMPLES)


def test_every_family_is_exported_under_its_catalogue_name_type_and_labels() -> None:
    metrics, monitor, _ = watched()
    open_p1(metrics, monitor, FixedClock(START))
    parsed = {
        family.name: family
        for family in text_string_to_metric_families(
            prometheus_client.generate_latest(metrics.registry).decode()
        )
    }
    for family in FAMILIES:
        name = family.exposed.removesuffix("_total").removesuffix("_info")
        if family.kind == "info":
            name = family.exposed  # exposed as a gauge named ..._info
        assert name in parsed, family.name
        kind = "gauge" if family.kind == "info" else family.kind
        assert parsed[name].type == kind, family.name
        for sample in parsed[name].samples:
            assert set(sample.labels) - {"le"} == set(family.labels), (family.name, sample)


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    """``docs/metrics.md``'s reference table: name -> (type, labels)."""
    rows = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        match = re.match(r"^\| `([a-z_]+)` \| (\w+) \| ([^|]*) \|", line)
        if match:
            labels = tuple(re.findall(r"`([a-z_]+)`", match.group(3)))
            rows[match.group(1)] = (match.group(2), labels)
    return rows


def test_the_metrics_reference_documents_every_family_with_its_type_and_labels() -> None:
    expected = {f.exposed: (f.kind, f.labels) for f in FAMILIES}
    assert documented() == expected


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = []
    for panel in dashboard["panels"]:
        for query in panel.get("targets", []):
            expressions.append(query["expr"])
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        if variable.get("type") == "query":
            # label_values(metric, label): only the metric is a name to check.
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", str(query))
            assert match, query
            expressions.append(match.group(1))
    return expressions


_PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "by", "without", "rate", "increase", "irate",
    "histogram_quantile", "le", "time", "label_values", "on", "ignoring", "group_left",
    "bool", "and", "or", "unless", "topk", "bottomk", "clamp_min", "vector", "abs",
    "sort", "sort_desc", "offset", "changes", "resets", "delta", "deriv", "scalar",
}  # fmt: skip


def names_in(expression: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside strings, label matchers, ranges,
    grouping clauses and function names."""
    text = re.sub(r'"[^"]*"', "", expression)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    return {w for w in words - _PROMQL_WORDS if not re.fullmatch(r"e\d*|Inf|NaN", w)}


def test_the_grafana_dashboard_parses_and_names_only_metrics_the_service_exports() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 8
    used = set().union(*(names_in(e) for e in expressions))
    assert used - exported_samples() == set()
    for wanted in (
        "ctiwatch_target_up",
        "ctiwatch_probe_duration_seconds_bucket",
        "ctiwatch_recognition_ratio",
        "ctiwatch_incident_sla_deadline_seconds",
        "ctiwatch_alerts_total",
        "ctiwatch_ingestion_lag_seconds_bucket",
        "ctiwatch_dead_letters_total",
    ):
        assert wanted in used, wanted


def test_the_expression_reader_finds_metric_names_and_nothing_else() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, service) (rate(ctiwatch_probe_duration_seconds_bucket"
        '{customer=~"$customer"}[5m]))) > bool 1e3 or on(service) vector(0) * scalar(up)'
    )
    assert names_in(expr) == {"ctiwatch_probe_duration_seconds_bucket", "up"}
