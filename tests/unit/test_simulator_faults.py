"""The simulator's pure core: which fault hits which request, and how faults are validated."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from classifier.observation import Service
from ctiwatch.config import ConfigError
from ctiwatch.simulator import (
    HEALTHY,
    Behaviour,
    Fault,
    FaultKind,
    FaultPlan,
    Outcome,
    SimulatorCore,
    SimUser,
    decide,
    parse_fault,
)
from probes.base import HttpRequest

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AUTH = {"Authorization": "Bearer secret"}


def fault(**kwargs: object) -> Fault:
    values: dict[str, object] = {"id": "f1", "service": Service.CRM, "kind": FaultKind.OUTAGE}
    values.update(kwargs)
    return Fault(**values)  # type: ignore[arg-type]


def decide_for(faults: list[Fault], user: str = "alice", **kwargs: object) -> Behaviour:
    now = kwargs.get("now", NOW)
    service = kwargs.get("service", Service.CRM)
    return decide(faults, service, "acme", "acme-ams", user, now, random.Random(1))  # type: ignore[arg-type]


def test_no_fault_is_healthy() -> None:
    assert decide_for([]) == HEALTHY == Behaviour(Outcome.OK, 0.0, True)


def test_outage_answers_with_an_error() -> None:
    assert decide_for([fault()]) == Behaviour(Outcome.ERROR, 0.0, False)


def test_refusing_outage_refuses_the_connection() -> None:
    assert decide_for([fault(refuse=True)]) == Behaviour(Outcome.REFUSED, 0.0, False)


def test_outage_of_one_service_spares_the_other() -> None:
    assert decide_for([fault()], service=Service.CLICK2DIAL) == HEALTHY


def test_fault_for_some_users_spares_the_others() -> None:
    faults = [fault(users=frozenset({"alice"}))]
    assert decide_for(faults, user="alice").outcome is Outcome.ERROR
    assert decide_for(faults, user="bob") == HEALTHY


def test_fault_for_another_customer_or_location_does_not_apply() -> None:
    assert decide_for([fault(customer="globex")]) == HEALTHY
    assert decide_for([fault(location="acme-rtm")]) == HEALTHY
    assert decide_for([fault(customer="acme", location="acme-ams")]).outcome is Outcome.ERROR


def test_fault_window_includes_from_and_excludes_to() -> None:
    faults = [fault(start=NOW, end=NOW + timedelta(hours=1))]
    assert decide_for(faults, now=NOW - timedelta(microseconds=1)) == HEALTHY
    assert decide_for(faults, now=NOW).outcome is Outcome.ERROR
    assert decide_for(faults, now=NOW + timedelta(minutes=59)).outcome is Outcome.ERROR
    assert decide_for(faults, now=NOW + timedelta(hours=1)) == HEALTHY


def test_slow_faults_take_the_largest_latency_and_still_recognise() -> None:
    faults = [
        fault(kind=FaultKind.SLOW, latency=5.0),
        fault(id="f2", kind=FaultKind.SLOW, latency=20.0),
    ]
    assert decide_for(faults) == Behaviour(Outcome.OK, 20.0, True)


def test_outage_wins_over_unrecognized_and_keeps_the_slow_latency() -> None:
    faults = [
        fault(kind=FaultKind.UNRECOGNIZED, rate=1.0),
        fault(id="f2", kind=FaultKind.SLOW, latency=3.0),
        fault(id="f3"),
    ]
    assert decide_for(faults) == Behaviour(Outcome.ERROR, 3.0, False)


def test_unrecognized_rate_misses_the_same_calls_with_the_same_seed() -> None:
    faults = [fault(kind=FaultKind.UNRECOGNIZED, rate=0.3)]

    def misses(seed: int) -> list[int]:
        rng = random.Random(seed)
        return [
            i
            for i in range(1000)
            if not decide(faults, Service.CRM, "acme", "acme-ams", "alice", NOW, rng).recognised
        ]

    first = misses(42)
    assert first == misses(42)
    assert len(first) == 295
    assert first[:5] == [1, 2, 3, 7, 9]


def test_unrecognized_without_rate_misses_every_call() -> None:
    behaviour = decide_for([fault(kind=FaultKind.UNRECOGNIZED)])
    assert behaviour == Behaviour(Outcome.OK, 0.0, False)


def test_parse_fault_reads_the_scenario_shape() -> None:
    parsed = parse_fault(
        {
            "service": "click2dial",
            "customer": "acme",
            "location": "acme-ams",
            "users": ["alice"],
            "from": "2026-12-01T10:00:00+01:00",
            "to": "2026-12-01T12:00:00+01:00",
            "kind": "slow",
            "latency": "20s",
        },
        NOW,
        "f7",
    )
    assert parsed == Fault(
        id="f7",
        service=Service.CLICK2DIAL,
        kind=FaultKind.SLOW,
        customer="acme",
        location="acme-ams",
        users=frozenset({"alice"}),
        rate=1.0,
        latency=20.0,
        start=datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        end=datetime(2026, 12, 1, 11, 0, tzinfo=UTC),
    )


def test_for_counts_from_now_when_no_from_is_given() -> None:
    parsed = parse_fault({"service": "crm", "kind": "outage", "for": "10m"}, NOW, "f1")
    assert (parsed.start, parsed.end) == (None, NOW + timedelta(minutes=10))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"kind": "outage"}, "service: is required"),
        ({"service": "sms", "kind": "outage"}, "service: "),
        ({"service": "crm", "kind": "down"}, "kind: "),
        ({"service": "crm", "kind": "unrecognized", "rate": 1.5}, "rate: "),
        ({"service": "crm", "kind": "slow"}, "latency: a slow fault needs a positive latency"),
        ({"service": "crm", "kind": "slow", "latency": "soon"}, "latency: "),
        ({"service": "crm", "kind": "outage", "from": "2026-12-01T10:00:00"}, "from: "),
        (
            {
                "service": "crm",
                "kind": "outage",
                "from": "2026-12-01T10:00:00Z",
                "to": "2026-12-01T09:00:00Z",
            },
            "to: must be after 'from'",
        ),
        ({"service": "crm", "kind": "slow", "latency": "1s", "refuse": True}, "refuse: "),
        ({"service": "crm", "kind": "outage", "colour": "red"}, "colour: unknown key"),
        (["crm"], "fault: must be an object"),
    ],
)
def test_bad_fault_names_the_field(data: object, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_fault(data, NOW, "f1")
    assert any(line.startswith(error) for line in caught.value.errors), caught.value.errors


def test_rejected_fault_uses_no_id() -> None:
    plan = FaultPlan()
    with pytest.raises(ConfigError):
        plan.add_from_data({"service": "crm"}, NOW)
    added = plan.add_from_data({"service": "crm", "kind": "outage"}, NOW)
    assert added.id == "f1"
    assert plan.remove("f1") is True
    assert plan.remove("f1") is False


# --- the request handler ------------------------------------------------------------------


def core_with_topology() -> SimulatorCore:
    users = [
        SimUser("acme", "acme-ams", "alice", "+31201111111", "Alice's contact"),
        SimUser("acme", "acme-ams", "bob"),
    ]
    return SimulatorCore("secret", users)


def call(core: SimulatorCore, user: str = "alice", number: str = "+31201111111", **kw: object):  # type: ignore[no-untyped-def]
    headers = kw.get("headers", AUTH)
    request = HttpRequest(
        "POST",
        f"http://sim/api/v1/click2dial/acme/acme-ams/{user}/calls",
        headers,  # type: ignore[arg-type]
        {"number": number},
    )
    return core.handle(request, NOW, random.Random(1))


def lookup(core: SimulatorCore, number: str = "%2B31201111111"):  # type: ignore[no-untyped-def]
    request = HttpRequest("GET", f"/api/v1/recognition/acme/acme-ams/alice?number={number}", AUTH)
    return core.handle(request, NOW, random.Random(1))


def test_click2dial_answers_a_call_id_state_and_the_contact() -> None:
    core = core_with_topology()
    latency, response = call(core)
    assert latency == 0.0 and response is not None
    assert response.status == 201
    assert json.loads(response.body) == {
        "call_id": "call-000001",
        "state": "ringing",
        "number": "+31201111111",
        "contact": {"name": "Alice's contact", "number": "+31201111111"},
    }
    _, second = call(core)
    assert second is not None and json.loads(second.body)["call_id"] == "call-000002"


def test_recognition_finds_the_contact_of_the_customers_own_users() -> None:
    _, response = lookup(core_with_topology())
    assert response is not None and response.status == 200
    assert json.loads(response.body) == {
        "number": "+31201111111",
        "contacts": [{"name": "Alice's contact", "number": "+31201111111"}],
    }


def test_recognition_of_an_unknown_number_answers_no_contacts() -> None:
    _, response = lookup(core_with_topology(), "%2B31209999999")
    assert response is not None and response.status == 200
    assert json.loads(response.body) == {"number": "+31209999999", "contacts": []}


def test_unescaped_plus_in_the_query_still_reads_as_plus() -> None:
    _, response = lookup(core_with_topology(), "+31201111111")
    assert response is not None and json.loads(response.body)["number"] == "+31201111111"


def test_missing_or_wrong_token_is_401() -> None:
    core = core_with_topology()
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        _, response = call(core, headers=headers)
        assert response is not None and response.status == 401


def test_unknown_user_is_404_when_the_topology_is_known() -> None:
    _, response = call(core_with_topology(), user="mallory")
    assert response is not None and response.status == 404
    assert json.loads(response.body) == {"error": "unknown user acme/acme-ams/mallory"}


def test_open_mode_knows_any_user_and_the_default_test_number() -> None:
    _, response = call(SimulatorCore("secret"), user="anyone", number="+31201234567")
    assert response is not None and response.status == 201
    assert json.loads(response.body)["contact"]["name"] == "ctiwatch test contact"


def test_click2dial_without_a_number_is_400() -> None:
    request = HttpRequest("POST", "/api/v1/click2dial/acme/acme-ams/alice/calls", AUTH, {})
    _, response = core_with_topology().handle(request, NOW, random.Random(1))
    assert response is not None and response.status == 400
    assert json.loads(response.body) == {"error": "number: is required"}


def test_unknown_route_is_404_and_health_needs_no_token() -> None:
    core = core_with_topology()
    _, missing = core.handle(HttpRequest("GET", "/api/v2/nothing", AUTH), NOW, random.Random())
    _, health = core.handle(HttpRequest("GET", "http://sim/health", {}), NOW, random.Random())
    assert missing is not None and missing.status == 404
    assert health is not None and (health.status, health.body) == (200, b'{"status":"ok"}')


def test_faults_shape_the_answers() -> None:
    core = core_with_topology()
    core.faults.add(fault(kind=FaultKind.UNRECOGNIZED))
    core.faults.add(fault(id="f2", service=Service.CLICK2DIAL, kind=FaultKind.SLOW, latency=4.0))
    _, missed = lookup(core)
    assert missed is not None and json.loads(missed.body)["contacts"] == []
    latency, slow = call(core)
    assert latency == 4.0 and slow is not None and slow.status == 201
    core.faults.add(fault(id="f3", service=Service.CLICK2DIAL, refuse=True))
    assert call(core) == (0.0, None)
    core.faults.clear()
    core.faults.add(fault())
    _, down = lookup(core)
    assert down is not None and (down.status, down.body) == (
        503,
        b'{"error":"service unavailable"}',
    )


def test_plan_finds_the_faults_in_force_in_any_order_of_asking_and_after_changes() -> None:
    rng = random.Random(1)
    hour = timedelta(hours=1)
    plan = FaultPlan(
        [
            fault(id="a", start=NOW + hour, end=NOW + 2 * hour),
            fault(id="b", kind=FaultKind.SLOW, latency=3.0, start=NOW + 3 * hour),
        ]
    )

    def at(hours: float) -> Behaviour:
        return plan.decide(Service.CRM, "acme", "acme-ams", "alice", NOW + hours * hour, rng)

    error, slow = Behaviour(Outcome.ERROR, 0.0, False), Behaviour(Outcome.OK, 3.0, True)
    asked = [1.5, 0, 2, 1, 5, 0.5, 3, 1.99]
    assert [at(h) for h in asked] == [error, HEALTHY, HEALTHY, error, slow, HEALTHY, slow, error]
    assert plan.decide(Service.CLICK2DIAL, "acme", "acme-ams", "alice", NOW + 1.5 * hour, rng) == (
        HEALTHY
    )
    plan.add(fault(id="c", start=NOW))
    assert at(0) == error
    assert plan.remove("c") and plan.remove("a")
    assert (at(0), at(1.5), at(4)) == (HEALTHY, HEALTHY, slow)
    plan.clear()
    assert at(4) == HEALTHY
