"""Answer checking without a network: a transport that returns canned answers."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import metadata

import pytest

from classifier.observation import Service, TargetKey
from ctiwatch.clock import FixedClock
from ctiwatch.config import config_from_data
from ctiwatch.settings import context_from_config, targets_from_config
from probes import (
    HttpRequest,
    HttpResponse,
    ProbeContext,
    ProbeTarget,
    TransportError,
    make_http_probe,
    probe_click2dial,
    probe_crm,
    sequential_ids,
)
from probes.base import PRODUCT, source_of, user_agent

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}


class Canned:
    """Answers every request with the same response (or error) and records the requests."""

    def __init__(self, response: HttpResponse | Exception) -> None:
        self.response = response
        self.requests: list[HttpRequest] = []

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


def target(service: Service = Service.CLICK2DIAL, base_url: str = "http://sim") -> ProbeTarget:
    return ProbeTarget(
        key=TargetKey(service, "acme", "acme-ams", "alice"),
        base_url=base_url,
        api_token="secret",
        caller_number="+31 20 1234567",
        expected_contact="Alice B.V.",
        extension="201",
    )


def ctx() -> ProbeContext:
    return ProbeContext(FixedClock(NOW), retries=0, new_id=sequential_ids())


def answer(status: int, body: bytes) -> HttpResponse:
    return HttpResponse(status, body, JSON)


def run_click2dial(response: HttpResponse | Exception) -> tuple[bool, bool | None, str]:
    result = asyncio.run(probe_click2dial(target(), Canned(response), ctx()))
    return result.ok, result.recognised, result.evidence.split("calls ", 1)[1]


def run_crm(response: HttpResponse) -> tuple[bool, bool | None, str]:
    result = asyncio.run(probe_crm(target(Service.CRM), Canned(response), ctx()))
    return result.ok, result.recognised, result.evidence.split("1234567 ", 1)[1]


def test_click2dial_request_carries_number_extension_token_and_who_asks() -> None:
    transport = Canned(answer(201, b'{"call_id":"c1","state":"ringing","contact":null}'))
    asyncio.run(probe_click2dial(target(), transport, ctx()))
    (request,) = transport.requests
    assert request == HttpRequest(
        "POST",
        "http://sim/api/v1/click2dial/acme/acme-ams/alice/calls",
        {
            "Accept": "application/json",
            "Authorization": "Bearer secret",
            "User-Agent": f"{PRODUCT} (central)",
        },
        {"number": "+31 20 1234567", "extension": "201"},
    )


def test_an_agents_requests_name_the_agent_round_after_round() -> None:
    transport = Canned(answer(200, b'{"contacts":[]}'))
    agent = replace(ctx(), source="ams-agent-1")
    crm = target(Service.CRM)
    asyncio.run(probe_crm(crm, transport, agent))
    asyncio.run(probe_crm(crm, transport, agent))
    first, second = transport.requests
    assert first.headers["User-Agent"] == f"{PRODUCT} (agent ams-agent-1)"
    assert second is first  # one request value per target: the transport's caches hold


def test_crm_request_escapes_the_number_in_the_query() -> None:
    transport = Canned(answer(200, b'{"contacts":[]}'))
    asyncio.run(probe_crm(target(Service.CRM), transport, ctx()))
    assert transport.requests[0].url == (
        "http://sim/api/v1/recognition/acme/acme-ams/alice?number=%2B31%2020%201234567"
    )


def test_click2dial_answer_naming_another_contact_is_a_miss() -> None:
    body = b'{"call_id":"c1","state":"ringing","contact":{"name":"Bob"}}'
    assert run_click2dial(answer(201, body)) == (
        True,
        False,
        "[STATUS] (201) == 2xx, [STATE] (ringing), [CONTACT] (Bob) == Alice B.V.; 0 ms; 1 attempt",
    )


@pytest.mark.parametrize(
    ("response", "evidence"),
    [
        (answer(500, b"oops"), "[STATUS] (500) == 2xx"),
        (answer(201, b"<html>"), "[STATUS] (201) == 2xx, [BODY] (<html>) is JSON"),
        (answer(201, b"[1]"), "[STATUS] (201) == 2xx, [BODY] is a JSON object"),
        (answer(201, b'{"state":"ringing"}'), "[STATUS] (201) == 2xx, [CALL_ID] (None) is set"),
        (
            answer(201, b'{"call_id":"c1","state":"failed"}'),
            "[STATUS] (201) == 2xx, [STATE] (failed) in dialing|ringing|connected",
        ),
        (TransportError("cannot connect to sim:80"), "no answer: cannot connect to sim:80"),
    ],
)
def test_click2dial_wrong_answers_fail_with_the_actual_value(
    response: HttpResponse | Exception, evidence: str
) -> None:
    assert run_click2dial(response) == (False, None, f"{evidence}; 0 ms; 1 attempt")


def test_crm_answer_without_the_expected_contact_is_a_miss() -> None:
    body = b'{"contacts":[{"name":"Bob"},{"name":"Carol"}]}'
    assert run_crm(answer(200, body)) == (
        True,
        False,
        "[STATUS] (200) == 2xx, [CONTACT] (Bob, Carol) == Alice B.V.; 0 ms; 1 attempt",
    )


def test_crm_answer_without_a_contacts_list_is_a_failure() -> None:
    assert run_crm(answer(200, b'{"matches":[]}')) == (
        False,
        None,
        "[STATUS] (200) == 2xx, [BODY] has a contacts list; 0 ms; 1 attempt",
    )


def test_http_probe_checks_status_body_and_certificate_expiry() -> None:
    probe = make_http_probe("/status", expected_status=200, body_contains="ok", min_cert_days=14)
    expiring = HttpResponse(200, b"all ok", {}, tls_not_after=NOW + timedelta(days=10))
    result = asyncio.run(probe(target(base_url="https://status.test"), Canned(expiring), ctx()))
    assert (result.ok, result.recognised, result.status) == (False, None, 200)
    assert result.evidence == (
        'GET https://status.test/status [STATUS] (200) == 200, [BODY] (all ok) contains "ok", '
        "[CERTIFICATE_EXPIRATION] (10.0d, expires 2026-12-11 09:00 UTC) >= 14d; 0 ms; 1 attempt"
    )


def test_http_probe_passes_when_every_condition_holds() -> None:
    probe = make_http_probe(body_contains="ok")
    result = asyncio.run(probe(target(), Canned(HttpResponse(200, b"ok", {})), ctx()))
    assert result.ok is True
    assert (
        result.evidence
        == 'GET http://sim [STATUS] (200) == 200, [BODY] (ok) contains "ok"; 0 ms; 1 attempt'
    )


def test_target_without_token_sends_no_authorization() -> None:
    bare = ProbeTarget(TargetKey(Service.CRM, "a", "b", "c"), "http://x/", "", "+31", "X")
    assert (bare.base_url, dict(bare.auth_headers)) == ("http://x", {"Accept": "application/json"})


def test_worst_case_adds_every_timeout_and_backoff() -> None:
    context = ProbeContext(FixedClock(NOW), timeout=10, retries=3, retry_backoff=1, max_backoff=3)
    assert context.worst_case == 10 * 4 + 1 + 2 + 3


def test_targets_from_config_cover_every_user_and_service_in_order() -> None:
    config = config_from_data(
        {
            "probes": {"base_url": "http://central", "api_token": "tok", "timeout": "5s"},
            "topology": {
                "customers": [
                    {
                        "id": "acme",
                        "locations": [
                            {"id": "acme-ams", "users": ["alice", "bob"]},
                            {"id": "acme-rtm", "base_url": "http://rtm", "users": ["carol"]},
                        ],
                    }
                ]
            },
        }
    )
    targets = targets_from_config(config)
    assert [(t.key.service.value, t.key.location, t.key.user, t.base_url) for t in targets] == [
        ("click2dial", "acme-ams", "alice", "http://central"),
        ("crm", "acme-ams", "alice", "http://central"),
        ("click2dial", "acme-ams", "bob", "http://central"),
        ("crm", "acme-ams", "bob", "http://central"),
        ("click2dial", "acme-rtm", "carol", "http://rtm"),
        ("crm", "acme-rtm", "carol", "http://rtm"),
    ]
    assert {(t.api_token, t.caller_number, t.expected_contact) for t in targets} == {
        ("tok", "+31201234567", "ctiwatch test contact")
    }
    context = context_from_config(config.probes, FixedClock(NOW))
    assert (context.timeout, context.retries, context.retry_backoff) == (5.0, 2, 1.0)


@pytest.mark.parametrize(
    ("source", "header"),
    [("central", f"{PRODUCT} (central)"), ("ams-agent-1", f"{PRODUCT} (agent ams-agent-1)")],
)
def test_a_prober_names_its_source_in_the_user_agent_and_the_simulator_reads_it_back(
    source: str, header: str
) -> None:
    assert f"ctiwatch/{metadata.version('ctiwatch')}" == PRODUCT
    assert user_agent(source) == header
    assert source_of(header) == source


@pytest.mark.parametrize("header", [None, "", "curl/8.5.0", "ctiwatch/0.1.0 (agent )"])
def test_a_user_agent_that_names_no_agent_is_the_central_prober(header: str | None) -> None:
    assert source_of(header) == "central"
