"""Generic HTTP checks of the platform's other endpoints (``probes.checks`` and a customer's
``checks``): strict configuration naming the check and field, one target per customer and
check, and their failures feeding the classifier as a condition of their own at the check's
priority, never the P1 of a location without a service (classification.md's table).

The checks against a real socket (TLS certificate about to expire, headers from the
environment) are in ``tests/integration/test_http_checks.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from classifier.conditions import ConditionKind
from classifier.observation import CHECKS, ProbeResult, Service, TargetKey
from ctiwatch.clock import FixedClock
from ctiwatch.config import ConfigError, config_from_data
from ctiwatch.custpages import _public_title
from ctiwatch.persist import incident_record
from ctiwatch.settings import monitor_settings, policy_from_config, targets_from_config
from pipeline.monitor import Monitor
from probes import HttpRequest, HttpResponse, ProbeContext, sequential_ids
from probes.registry import PROBES

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tuesday 10:00 Amsterdam: support hours
JSON = {"Content-Type": "application/json"}
PORTAL = {
    "id": "portal",
    "url": "https://{customer}.portal.cloudcti.test/health",
    "headers": {"X-Portal-Key": "${PORTAL_KEY}"},
    "conditions": ["[STATUS] == 200", '[BODY].status == "ok"'],
    "certificate_warning_days": 14,
}


def config(checks: list[Any] | None = None, own: list[Any] | None = None, **extra: Any) -> Any:
    acme: dict[str, Any] = {"id": "acme", "locations": [{"id": "acme-ams", "users": ["alice"]}]}
    if own is not None:
        acme["checks"] = own
    return config_from_data(
        {
            "probes": {"checks": checks if checks is not None else [PORTAL]},
            "topology": {
                "customers": [
                    acme,
                    {"id": "globex", "locations": [{"id": "globex-utr", "users": ["frank"]}]},
                ]
            },
            "alerting": {"oncall": ["+31612345678"]},
            **extra,
        },
        environ={"PORTAL_KEY": "portal-secret"},
    )


class Canned:
    def __init__(self, response: HttpResponse) -> None:
        self.response = response
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return self.response


# --- configuration ---------------------------------------------------------------------------


def test_every_customer_runs_the_common_checks_and_its_own() -> None:
    status = {"id": "status-api", "url": "/api/v1/status", "priority": 4}
    targets = targets_from_config(config(own=[status]))
    checks = [t for t in targets if t.key.service is Service.HTTP]
    assert [t.key for t in checks] == [
        TargetKey(Service.HTTP, "acme", CHECKS, "portal"),
        TargetKey(Service.HTTP, "acme", CHECKS, "status-api"),
        TargetKey(Service.HTTP, "globex", CHECKS, "portal"),
    ]
    transport = Canned(HttpResponse(200, b'{"status":"ok"}', JSON))
    ctx = ProbeContext(FixedClock(START), retries=0, new_id=sequential_ids())
    for target in checks:
        asyncio.run(PROBES[target.kind](target, transport, ctx))
    portal, status_api, globex = transport.requests
    assert portal.url == "https://acme.portal.cloudcti.test/health"
    assert globex.url == "https://globex.portal.cloudcti.test/health"
    assert status_api.url == "http://127.0.0.1:8081/api/v1/status"  # under probes.base_url
    assert portal.headers["X-Portal-Key"] == "portal-secret"
    # A check may ask any host: the CloudCTI API token is never sent with it.
    assert "Authorization" not in portal.headers
    assert "Authorization" not in status_api.headers


def test_a_check_prints_actual_and_expected_with_the_certificate_expiry_date() -> None:
    (target, *_) = [t for t in targets_from_config(config()) if t.key.service is Service.HTTP]
    ctx = ProbeContext(FixedClock(START), retries=0, new_id=sequential_ids())
    expiring = HttpResponse(
        200, b'{"status":"ok"}', JSON, tls_not_after=START + timedelta(days=6, hours=3)
    )
    result = asyncio.run(PROBES["http"](target, Canned(expiring), ctx))
    assert (result.ok, result.recognised, result.status) == (False, None, 200)
    assert result.evidence == (
        "GET https://acme.portal.cloudcti.test/health [STATUS] (200) == 200, "
        '[BODY].status (ok) == "ok", '
        "[CERTIFICATE_EXPIRATION] (6.1d, expires 2026-12-07 12:00 UTC) > 14d; 0 ms; 1 attempt"
    )
    down = HttpResponse(502, b"<html>bad gateway</html>", {})
    result = asyncio.run(PROBES["http"](target, Canned(down), ctx))
    assert result.evidence.endswith(" [STATUS] (502) == 200; 0 ms; 1 attempt")


def test_the_simulator_and_agents_leave_the_checks_out() -> None:
    targets = targets_from_config(config(), checks=False)
    assert all(t.key.service is not Service.HTTP for t in targets)


@pytest.mark.parametrize(
    ("checks", "own", "errors"),
    [
        (
            [{**PORTAL, "url": "https://x.test/{user}"}],
            None,
            [
                "probes.checks[portal].url: a check belongs to a customer: only {customer} "
                "stands for a value here, not {user}"
            ],
        ),
        (
            [{**PORTAL, "priority": 1, "certificate_warning_days": 0}],
            None,
            [
                "probes.checks[portal].certificate_warning_days: must be greater than or equal "
                "to 1, not 0",
                "probes.checks[portal].priority: must be greater than or equal to 2, not 1",
            ],
        ),
        (
            [{**PORTAL, "conditions": ["[STATUS] == 200", "[BODY].ok is true"]}],
            None,
            [
                "probes.checks[portal].conditions[[BODY].ok is true]: unknown operator 'is' "
                "after [BODY].ok (use ==, !=, <, <=, >, >= or contains)"
            ],
        ),
        (
            [{"id": "portal", "method": "FETCH", "url": "ftp://x"}],
            None,
            [
                "probes.checks[portal].method: must be one of GET, POST, PUT, PATCH, DELETE, "
                "HEAD, OPTIONS, not 'FETCH'",
                "probes.checks[portal].url: must be a path such as '/api/v1/status' (under the "
                "location's base_url) or an http:// or https:// URL, not 'ftp://x'",
            ],
        ),
        ([{"id": "portal"}], None, ["probes.checks[portal].url: is required"]),
        (
            [{**PORTAL, "recognised": "[BODY].name == x"}],
            None,
            ["probes.checks[portal].recognised: unknown key (check the spelling)"],
        ),
        ([PORTAL, PORTAL], None, ["probes.checks: id 'portal' is used twice"]),
        (
            [PORTAL],
            [{"id": "portal", "url": "/x"}],
            [
                "topology: customer 'acme': check 'portal' is also in probes.checks (every "
                "customer has those): give it another id"
            ],
        ),
    ],
)
def test_a_bad_check_is_a_config_error_naming_the_check_and_field(
    checks: list[Any], own: list[Any] | None, errors: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        config(checks, own)
    assert caught.value.errors == errors


# --- judgement -------------------------------------------------------------------------------


def failing(check: str, at: datetime, ok: bool = False) -> ProbeResult:
    return ProbeResult(
        result_id=f"{check}-{at:%H%M}",
        target=TargetKey(Service.HTTP, "acme", CHECKS, check),
        at=at,
        ok=ok,
        recognised=None,
        latency_ms=3.0,
        status=200 if ok else 502,
        evidence="[STATUS] (200) == 200" if ok else "[STATUS] (502) == 200",
    )


def test_a_failing_check_is_its_own_condition_at_its_priority_never_a_location_p1() -> None:
    cfg = config(own=[{"id": "sso", "url": "/sso/health", "priority": 2}])
    monitor = Monitor(monitor_settings(cfg), policy_from_config(cfg.sla))
    at = START
    messages = []
    for minute in range(3):  # the customer's only checks both fail: still no P1
        at = START + timedelta(minutes=minute)
        outcome = monitor.observe([failing("portal", at), failing("sso", at)], at)
        messages += outcome.messages
    held = monitor.classifier.conditions(at)
    assert [(c.user, c.kind, int(c.priority)) for c in held] == [
        ("portal", ConditionKind.CHECK_FAILED, 3),
        ("sso", ConditionKind.CHECK_FAILED, 2),
    ]
    assert held[0].reason == "3 consecutive failed rounds of check portal: [STATUS] (502) == 200"
    incident = monitor.engine.incident(1)
    assert (incident.customer, int(incident.priority)) == ("acme", 2)
    assert "check sso failing" in incident.title
    sms = [m.text for m in messages if m.channel == "sms"]
    assert sms and all("checks portal, sso failing" in text for text in sms), sms
    (report,) = [m.text for m in messages if m.channel == "email"]
    assert "check portal failing (P3)" in report and "check sso failing (P2)" in report
    # The customer's own status page says it in words, without a location.
    public = _public_title(incident_record(incident, at), {"acme-ams": "Amsterdam"})
    assert public == "check portal failing; check sso failing"
    # Three good rounds clear a check, as they clear a user.
    for minute in range(3, 6):
        at = START + timedelta(minutes=minute)
        monitor.observe([failing("portal", at, ok=True), failing("sso", at, ok=True)], at)
    assert monitor.classifier.conditions(at) == []


def test_results_of_checks_no_customer_has_are_ignored() -> None:
    cfg = config()
    monitor = Monitor(monitor_settings(cfg), policy_from_config(cfg.sla))
    for minute in range(3):
        at = START + timedelta(minutes=minute)
        monitor.observe([failing("unknown", at)], at)
    assert monitor.classifier.conditions(START + timedelta(minutes=3)) == []


def test_a_failing_check_held_before_a_restart_clears_after_good_rounds() -> None:
    cfg = config()
    before = Monitor(monitor_settings(cfg), policy_from_config(cfg.sla))
    at = START
    for minute in range(3):
        at = START + timedelta(minutes=minute)
        before.observe([failing("portal", at)], at)
    (held,) = before.classifier.conditions(at)
    # A new process: the classifier takes the stored incident's condition back.
    after = Monitor(monitor_settings(cfg), policy_from_config(cfg.sla))
    after.classifier.resume([held], at)
    assert after.classifier.conditions(at) == [held]
    for minute in range(3, 6):
        at = START + timedelta(minutes=minute)
        after.classifier.observe(failing("portal", at, ok=True))
    assert after.classifier.conditions(at) == []
