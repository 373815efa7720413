"""Probe templates (issue 12): requests and Gatus-style conditions from the configuration.

The default templates are the built-in checks: the simulator serves what they name and a
scenario gives the same output with them written out in the file; a configured template sends
what it says and prints every condition's actual value beside the expected one.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from classifier.observation import CALL_SERVICES, Service, TargetKey
from ctiwatch.clock import FixedClock
from ctiwatch.config import ConfigError, config_from_data, load_config
from ctiwatch.scenario import load_scenario
from ctiwatch.settings import targets_from_config
from ctiwatch.simulate import result_json, run_simulation
from ctiwatch.simulator import SimulatorCore, SimulatorTransport
from probes import HttpRequest, HttpResponse, ProbeContext, ProbeTarget, sequential_ids
from probes.conditions import Answer, ConditionError, parse_condition
from probes.template import DEFAULT_SPECS, DEFAULT_TEMPLATES, probe_template

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
JSON = {"Content-Type": "application/json"}


class Canned:
    def __init__(self, response: HttpResponse) -> None:
        self.response = response
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return self.response


def ctx() -> ProbeContext:
    return ProbeContext(FixedClock(NOW), retries=0, new_id=sequential_ids())


def topology(users: list[Any] | None = None) -> dict[str, Any]:
    return {
        "customers": [
            {
                "id": "acme",
                "locations": [{"id": "acme-ams", "users": users or ["alice"]}],
            }
        ]
    }


def configured(templates: dict[str, Any], users: list[Any] | None = None) -> list[ProbeTarget]:
    config = config_from_data(
        {
            "probes": {"base_url": "https://api.cloudcti.test", "templates": templates},
            "topology": topology(users),
        },
        environ={"CLOUDCTI_KEY": "s3cret"},
    )
    return targets_from_config(config)


def run(target: ProbeTarget, response: HttpResponse) -> tuple[Any, Canned]:
    transport = Canned(response)
    return asyncio.run(probe_template(target, transport, ctx())), transport


# --- the defaults ------------------------------------------------------------------------------


def test_the_default_configuration_holds_the_built_in_templates() -> None:
    templates = config_from_data({}).probes.templates
    for kind, spec in DEFAULT_SPECS.items():
        shown = getattr(templates, kind).model_dump()
        assert {**shown, "body": shown["body"]} == dict(spec)


@pytest.mark.parametrize("service", list(CALL_SERVICES))
def test_the_simulator_serves_the_paths_the_default_templates_name(service: Service) -> None:
    config = config_from_data({"topology": topology(["alice"])})
    (target,) = [t for t in targets_from_config(config) if t.key.service is service]
    core = SimulatorCore.from_config(config)
    transport = SimulatorTransport(core, FixedClock(NOW), random.Random(1))
    result = asyncio.run(probe_template(target, transport, ctx()))
    assert (result.ok, result.recognised, result.status) == (
        True,
        True,
        201 if service is Service.CLICK2DIAL else 200,
    )
    assert "/acme/acme-ams/alice" in result.evidence


@pytest.mark.parametrize(("status", "kind"), [(503, "crm"), (401, "click2dial"), (404, "crm")])
def test_a_refusing_platform_gives_todays_evidence(status: int, kind: str) -> None:
    target = ProbeTarget(
        TargetKey(Service(kind), "acme", "acme-ams", "alice"), "http://sim", "t", "+31", "X"
    )
    result, _ = run(target, HttpResponse(status, b'{"error":"no"}', JSON))
    assert (result.ok, result.recognised) == (False, None)
    assert result.evidence.endswith(f" [STATUS] ({status}) == 2xx; 0 ms; 1 attempt")


# Every answer the built-in checks tell apart, with the evidence ctiwatch printed before
# templates existed (0cfe110^: probes/click2dial.py and probes/crm.py), word for word.
TODAYS_CLICK2DIAL = [
    (
        201,
        b'{"call_id":"c1","state":"ringing","contact":{"name":"ctiwatch test contact"}}',
        (True, True),
        "[STATUS] (201) == 2xx, [STATE] (ringing), "
        "[CONTACT] (ctiwatch test contact) == ctiwatch test contact",
    ),
    (
        200,
        b'{"call_id":"c1","state":"connected","contact":{"name":"Bob"}}',
        (True, False),
        "[STATUS] (200) == 2xx, [STATE] (connected), [CONTACT] (Bob) == ctiwatch test contact",
    ),
    (
        201,
        b'{"call_id":"c1","state":"dialing"}',
        (True, False),
        "[STATUS] (201) == 2xx, [STATE] (dialing), [CONTACT] (none) == ctiwatch test contact",
    ),
    (503, b'{"error":"down"}', (False, None), "[STATUS] (503) == 2xx"),
    (201, b"<html>", (False, None), "[STATUS] (201) == 2xx, [BODY] (<html>) is JSON"),
    (201, b"[1]", (False, None), "[STATUS] (201) == 2xx, [BODY] is a JSON object"),
    (
        201,
        b'{"state":"ringing"}',
        (False, None),
        "[STATUS] (201) == 2xx, [CALL_ID] (None) is set",
    ),
    (
        201,
        b'{"call_id":7,"state":"ringing"}',
        (False, None),
        "[STATUS] (201) == 2xx, [CALL_ID] (7) is set",
    ),
    (
        201,
        b'{"call_id":"c1","state":"failed"}',
        (False, None),
        "[STATUS] (201) == 2xx, [STATE] (failed) in dialing|ringing|connected",
    ),
]
TODAYS_CRM = [
    (
        200,
        b'{"contacts":[{"name":"ctiwatch test contact"}]}',
        (True, True),
        "[STATUS] (200) == 2xx, [CONTACT] (ctiwatch test contact) == ctiwatch test contact",
    ),
    (
        200,
        b'{"contacts":[{"name":"Bob"},{"name":"Carol"}]}',
        (True, False),
        "[STATUS] (200) == 2xx, [CONTACT] (Bob, Carol) == ctiwatch test contact",
    ),
    (
        200,
        b'{"contacts":[]}',
        (True, False),
        "[STATUS] (200) == 2xx, [CONTACT] (none) == ctiwatch test contact",
    ),
    (404, b"", (False, None), "[STATUS] (404) == 2xx"),
    (200, b"x" * 100, (False, None), f"[STATUS] (200) == 2xx, [BODY] ({'x' * 80}...) is JSON"),
    (200, b'{"matches":[]}', (False, None), "[STATUS] (200) == 2xx, [BODY] has a contacts list"),
    (
        200,
        b'{"contacts":{"name":"x"}}',
        (False, None),
        "[STATUS] (200) == 2xx, [BODY] has a contacts list",
    ),
]


@pytest.mark.parametrize(
    ("service", "status", "body", "verdict", "evidence"),
    [(Service.CLICK2DIAL, *case) for case in TODAYS_CLICK2DIAL]
    + [(Service.CRM, *case) for case in TODAYS_CRM],
)
def test_the_default_templates_give_exactly_todays_evidence(
    service: Service, status: int, body: bytes, verdict: tuple[bool, bool | None], evidence: str
) -> None:
    # The production path: targets from a configuration that names no template.
    targets = targets_from_config(config_from_data({"topology": topology()}))
    (target,) = [t for t in targets if t.key.service is service]
    result, transport = run(target, HttpResponse(status, body, JSON))
    (request,) = transport.requests
    assert (result.ok, result.recognised) == verdict
    assert result.evidence == f"{request.method} {request.url} {evidence}; 0 ms; 1 attempt"


@pytest.mark.parametrize("service", list(CALL_SERVICES))
def test_a_default_template_written_out_unchanged_is_the_built_in_one(service: Service) -> None:
    written = config_from_data(
        {
            "probes": {"templates": {service.value: dict(DEFAULT_SPECS[service.value])}},
            "topology": topology(),
        }
    )
    (target,) = [t for t in targets_from_config(written) if t.key.service is service]
    assert target.template is DEFAULT_TEMPLATES[service.value]


def test_a_default_template_changed_in_one_part_prints_actual_and_expected() -> None:
    # The same conditions with one more header: the user's template, judged by its conditions.
    (target, _) = configured({"click2dial": {"headers": {"X-Trace": "{user}"}}})
    body = b'{"call_id":"c1","state":"ringing","contact":{"name":"Bob"}}'
    result, _ = run(target, HttpResponse(201, body, JSON))
    assert (result.ok, result.recognised) == (True, False)
    assert result.evidence.endswith(
        '[STATUS] (201) == 2xx, [BODY].call_id (c1) != "", '
        "[BODY].state (ringing) == any(dialing, ringing, connected), "
        "[BODY].contact.name (Bob) == ctiwatch test contact; 0 ms; 1 attempt"
    )


def test_a_scenario_gives_the_same_output_with_the_default_templates_written_out() -> None:
    scenario = load_scenario(ROOT / "config" / "scenarios" / "degraded-recognition.yaml")
    default = load_config(None)
    written = config_from_data(
        {"probes": {"templates": {kind: dict(spec) for kind, spec in DEFAULT_SPECS.items()}}}
    )
    assert json.dumps(result_json(run_simulation(written, scenario))) == json.dumps(
        result_json(run_simulation(default, scenario))
    )


# --- configured templates ----------------------------------------------------------------------

RINGING = {
    "method": "POST",
    "url": "/v2/tenants/{customer}/users/{user}/calls?site={location}&from={number}",
    "headers": {"X-Api-Key": "${CLOUDCTI_KEY}", "X-User": "{user}"},
    "body": {"to": "{number}", "from_extension": "{extension}", "tag": "ctiwatch {user}"},
    "conditions": [
        "[STATUS] == 201",
        '[BODY].state == "ringing"',
        '[BODY].contact.id != ""',
        "[RESPONSE_TIME] < 2000",
    ],
    "recognised": "[BODY].contact.name == {contact}",
}


def test_a_configured_template_sends_what_it_says_with_secrets_from_the_environment() -> None:
    alice, _ = configured({"click2dial": RINGING}, [{"id": "alice", "extension": "201"}])
    bob, _ = configured({"click2dial": RINGING}, ["bob"])
    body = b'{"state":"ringing","contact":{"id":"c7","name":"ctiwatch test contact"}}'
    result, transport = run(alice, HttpResponse(201, body, JSON))
    (request,) = transport.requests
    assert request.method == "POST"
    assert request.url == (
        "https://api.cloudcti.test/v2/tenants/acme/users/alice/calls?site=acme-ams"
        "&from=%2B31201234567"  # values URL-encoded
    )
    assert request.headers["X-Api-Key"] == "s3cret"
    assert request.headers["X-User"] == "alice"
    assert request.headers["Authorization"] == "Bearer ctiwatch-demo-token"
    assert request.json == {"to": "+31201234567", "from_extension": "201", "tag": "ctiwatch alice"}
    assert (result.ok, result.recognised) == (True, True)
    # No extension: the field that is only that placeholder is left out.
    _, transport = run(bob, HttpResponse(201, body, JSON))
    assert transport.requests[0].json == {"to": "+31201234567", "tag": "ctiwatch bob"}


@pytest.mark.parametrize(
    ("status", "body", "evidence"),
    [
        (503, b"{}", "[STATUS] (503) == 201"),
        (
            201,
            b'{"state":"queued"}',
            '[STATUS] (201) == 201, [BODY].state (queued) == "ringing"',
        ),
        (
            201,
            b'{"state":"ringing","contact":{"id":""}}',
            '[STATUS] (201) == 201, [BODY].state (ringing) == "ringing", '
            '[BODY].contact.id () != ""',
        ),
        (
            201,
            b'{"state":"ringing"}',
            '[STATUS] (201) == 201, [BODY].state (ringing) == "ringing", '
            '[BODY].contact.id (missing) != ""',
        ),
    ],
)
def test_a_failing_condition_prints_actual_and_expected(
    status: int, body: bytes, evidence: str
) -> None:
    target, _ = configured({"click2dial": RINGING})
    result, _ = run(target, HttpResponse(status, body, JSON))
    assert (result.ok, result.recognised, result.status) == (False, None, status)
    assert result.evidence.endswith(f" {evidence}; 0 ms; 1 attempt")


def test_a_recognition_that_fails_is_a_miss_with_its_evidence() -> None:
    target, _ = configured({"click2dial": RINGING})
    body = b'{"state":"ringing","contact":{"id":"c9","name":"Bob"}}'
    result, _ = run(target, HttpResponse(201, body, JSON))
    assert (result.ok, result.recognised, result.is_miss) == (True, False, True)
    assert result.evidence.endswith(
        '[BODY].contact.id (c9) != "", [RESPONSE_TIME] (0) < 2000, '
        "[BODY].contact.name (Bob) == ctiwatch test contact; 0 ms; 1 attempt"
    )


def test_keys_left_out_of_a_template_keep_the_services_default() -> None:
    (target,) = configured({"crm": {"url": "https://crm.cloudcti.test/lookup?n={number}"}})[1:]
    result, transport = run(
        target, HttpResponse(200, b'{"contacts":[{"name":"ctiwatch test contact"}]}', JSON)
    )
    assert transport.requests[0].url == "https://crm.cloudcti.test/lookup?n=%2B31201234567"
    assert (result.ok, result.recognised) == (True, True)


def test_a_generic_http_check_judges_status_body_and_certificate() -> None:
    status_page = {
        "method": "GET",
        "url": "/api/v1/status",
        "body": None,
        "conditions": [
            "[STATUS] == any(200, 204)",
            "[BODY].components[*].status contains operational",
            "len([BODY].components) >= 2",
            "[CERTIFICATE_EXPIRATION] > 14d",
        ],
        "recognised": None,
    }
    (target,) = configured({"crm": status_page})[1:]
    body = b'{"components":[{"status":"operational"},{"status":"degraded"}]}'
    expiring = HttpResponse(200, body, JSON, tls_not_after=NOW + timedelta(days=10))
    result, _ = run(target, expiring)
    assert (result.ok, result.recognised) == (False, None)
    assert result.evidence == (
        "GET https://api.cloudcti.test/api/v1/status [STATUS] (200) == any(200, 204), "
        "[BODY].components[*].status (operational, degraded) contains operational, "
        "len([BODY].components) (2) >= 2, "
        "[CERTIFICATE_EXPIRATION] (10.0d, expires 2026-12-11 09:00 UTC) > 14d; "
        "0 ms; 1 attempt"
    )
    fresh = HttpResponse(200, body, JSON, tls_not_after=NOW + timedelta(days=60))
    assert run(target, fresh)[0].ok is True
    plain = HttpResponse(200, body, JSON)  # no TLS: no certificate to judge
    assert run(target, plain)[0].evidence.endswith(
        "[CERTIFICATE_EXPIRATION] (unknown) > 14d; 0 ms; 1 attempt"
    )


# --- the condition grammar ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "holds", "shown"),
    [
        ("[STATUS] == 2xx", True, "[STATUS] (201) == 2xx"),
        ("[STATUS]==201", True, "[STATUS] (201) == 201"),
        ("[STATUS] < 300", True, "[STATUS] (201) < 300"),
        ("[STATUS] != any(500, 503)", True, "[STATUS] (201) != any(500, 503)"),
        ('[BODY].state == "ringing"', True, '[BODY].state (ringing) == "ringing"'),
        ("[BODY].count > 2", True, "[BODY].count (3) > 2"),
        ("[BODY].count == 3.0", True, "[BODY].count (3) == 3.0"),
        ("[BODY].ok == true", True, "[BODY].ok (true) == true"),
        ("[BODY].none == null", True, "[BODY].none (null) == null"),
        ("[BODY].items[1].id == b", True, "[BODY].items[1].id (b) == b"),
        ("[BODY].items[-1].id == b", True, "[BODY].items[-1].id (b) == b"),
        ("[BODY].items[*].id contains a", True, "[BODY].items[*].id (a, b) contains a"),
        ("has([BODY].gone) == false", True, "has([BODY].gone) (false) == false"),
        ("len([BODY].items) == 2", True, "len([BODY].items) (2) == 2"),
        ('[BODY] contains "\\"ok\\""', True, '[BODY] ({"state":"ringing","count":3,'),
        ('[BODY] contains "gone"', False, '[BODY] ({"state":"ringing","count":3,'),
        ("[BODY].gone != x", False, "[BODY].gone (missing) != x"),
        ("[BODY].count < x9", False, None),
        ("[RESPONSE_TIME] <= 1.5s", True, "[RESPONSE_TIME] (1500) <= 1.5s"),
        ("[RESPONSE_TIME] > 1500", False, "[RESPONSE_TIME] (1500) > 1500"),
        ("[CERTIFICATE_EXPIRATION] > 48h", True, "[CERTIFICATE_EXPIRATION] (3.0d) > 48h"),
        ("[CERTIFICATE_EXPIRATION] < 259300000", True, None),
    ],
)
def test_conditions_read_the_answer_as_gatus_does(
    condition: str, holds: bool, shown: str | None
) -> None:
    body = b'{"state":"ringing","count":3,"ok":true,"none":null,"items":[{"id":"a"},{"id":"b"}]}'
    try:
        parsed = parse_condition(condition)
    except ConditionError:
        assert shown is None  # "< x9" compares numbers: refused at load
        return
    ok, text = parsed.evaluate(Answer(201, body, 1500.0, 3 * 86400.0))
    assert ok is holds
    if shown is not None:
        assert text.startswith(shown)


@pytest.mark.parametrize(
    ("condition", "error"),
    [
        ("", "must be a condition such as '[STATUS] == 200'"),
        ("STATUS == 200", "must start with [STATUS], [BODY], [RESPONSE_TIME], "),
        ("[STATUS]", "[STATUS] needs an operator and a value, such as '== 200'"),
        ("[STATUS] ==", "[STATUS] == needs a value after the operator"),
        ("[STATUS] =~ 2..", "unknown operator '=~' after [STATUS]"),
        ("[STATUS] == 2xx5", "[STATUS] compares with a status such as 200"),
        ("[STATUS] contains 2", "[STATUS] is a number: contains is for texts and lists"),
        ("[STATUS] < any(1, 2)", "< compares with one value, not any(...)"),
        ("[BODY].a. == 1", "a body path step after '.' is a key"),
        ("[BODY].a[x] == 1", "a body path index is a number or * such as [0] or [*]"),
        ("len([STATUS]) == 1", "len(...) takes a body path such as [BODY].items"),
        ("has([BODY].a == true", "has( is not closed with ')'"),
        ("has([BODY].a) == yes", "has([BODY].a) is true or false"),
        ("[BODY].a == 2xx", "2xx is a status class: only [STATUS] == 2xx"),
        ("[BODY].a == {who}", "unknown placeholder {who}"),
        ("[CERTIFICATE_EXPIRATION] > soon", "[CERTIFICATE_EXPIRATION] compares with millisec"),
        ("[STATUS] == 200\n", "a condition is one line of printable text"),
        ("[BODY].a == " + "x" * 1000, "a condition is at most 1000 characters"),
    ],
)
def test_a_bad_condition_says_what_is_wrong(condition: str, error: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(condition)
    assert str(caught.value).startswith(error)


def test_a_bad_template_is_a_config_error_naming_the_service_and_field() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_data(
            {"probes": {"templates": {"crm": {"conditions": ["[STATUS] == 200", "[BODY] ~ x"]}}}}
        )
    assert caught.value.errors == [
        "probes.templates.crm.conditions[[BODY] ~ x]: unknown operator '~' after [BODY] "
        "(use ==, !=, <, <=, >, >= or contains)"
    ]


def test_the_default_templates_are_parsed_once_into_the_registry_values() -> None:
    assert set(DEFAULT_TEMPLATES) == {service.value for service in CALL_SERVICES}
    (click2dial, crm) = targets_from_config(config_from_data({"topology": topology()}))
    assert click2dial.template is not None and crm.template is not None
    assert [c.text for c in click2dial.template.conditions] == list(
        DEFAULT_SPECS["click2dial"]["conditions"]
    )
