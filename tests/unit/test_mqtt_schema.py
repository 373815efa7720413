"""MQTT payloads: strict decoding with errors that name the field, and a lossless round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from classifier.observation import ProbeResult, Service, Source, TargetKey
from ctiwatch.config import config_from_data
from ctiwatch.mqtt.schema import (
    PayloadError,
    TopologyIndex,
    decode_call,
    decode_results,
    decode_status,
    encode_call,
    encode_result,
    encode_results,
    encode_status,
)

TOPOLOGY = TopologyIndex(
    config_from_data(
        {
            "topology": {
                "customers": [
                    {
                        "id": "acme",
                        "locations": [
                            {"id": "acme-ams", "users": ["alice", "bob"]},
                            {"id": "acme-rtm", "users": ["carol"]},
                        ],
                    }
                ]
            }
        }
    ).topology
)
AT = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
NOW = AT + timedelta(seconds=30)  # when the messages arrive


def result(n: int = 1, **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "result_id": f"r{n}",
        "service": "crm",
        "customer": "acme",
        "location": "acme-ams",
        "user": "alice",
        "at": "2025-01-06T10:00:00+01:00",
        "ok": True,
        "recognised": False,
        "latency_ms": 41.5,
        "status": 200,
        "evidence": "POST http://x/lookup [CONTACT] (none) == ctiwatch test contact",
        "attempts": 2,
    }
    item.update(changes)
    return item


def batch(*results: dict[str, Any], **changes: Any) -> bytes:
    payload: dict[str, Any] = {
        "schema": "ctiwatch.results/1",
        "agent": "ams-1",
        "sent_at": "2025-01-06T09:00:01Z",
        "results": list(results) or [result()],
    }
    payload.update(changes)
    return json.dumps(payload).encode()


def error_of(payload: bytes, **kwargs: Any) -> tuple[str, str]:
    """The error a batch gets: its own, or (a batch of bad results only) its first result's."""
    try:
        decoded = decode_results(payload, TOPOLOGY, now=NOW, **kwargs)
    except PayloadError as exc:
        return exc.reason, str(exc)
    assert decoded.results == []
    return decoded.rejected[0].reason, str(decoded.rejected[0])


def test_valid_batch_decodes_into_agent_results_in_utc() -> None:
    decoded = decode_results(
        batch(result(1), result(2, service="click2dial", recognised=None)), TOPOLOGY, now=NOW
    )

    assert decoded.agent == "ams-1"
    assert decoded.sent_at == datetime(2025, 1, 6, 9, 0, 1, tzinfo=UTC)
    assert decoded.rejected == []
    assert decoded.results == [
        ProbeResult(
            result_id="r1",
            target=TargetKey(Service.CRM, "acme", "acme-ams", "alice"),
            at=AT,
            ok=True,
            recognised=False,
            latency_ms=41.5,
            status=200,
            evidence="POST http://x/lookup [CONTACT] (none) == ctiwatch test contact",
            source=Source.AGENT,
            attempts=2,
            source_id="ams-1",
        ),
        ProbeResult(
            result_id="r2",
            target=TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", "alice"),
            at=AT,
            ok=True,
            recognised=None,
            latency_ms=41.5,
            status=200,
            evidence="POST http://x/lookup [CONTACT] (none) == ctiwatch test contact",
            source=Source.AGENT,
            attempts=2,
            source_id="ams-1",
        ),
    ]
    assert decoded.results[0].at.utcoffset() == timedelta(0)


def test_unknown_service_rejects_that_result_alone_naming_the_allowed_values() -> None:
    payload = batch(result(0), result(1), result(2), result(3, service="sms"))

    decoded = decode_results(payload, TOPOLOGY, now=NOW)

    assert [r.result_id for r in decoded.results] == ["r0", "r1", "r2"]
    assert [(e.reason, str(e)) for e in decoded.rejected] == [
        ("invalid_payload", 'results[3].service: must be click2dial or crm, not "sms"')
    ]


def test_an_agent_cannot_speak_for_a_customers_http_check() -> None:
    # Checks run from the central workers only: a result naming one is refused like any
    # service the agents do not probe.
    forged = result(1, service="http", location="checks", user="portal")
    decoded = decode_results(batch(result(0), forged), TOPOLOGY, now=NOW)
    assert [r.result_id for r in decoded.results] == ["r0"]
    assert [(e.reason, str(e)) for e in decoded.rejected] == [
        ("invalid_payload", 'results[1].service: must be click2dial or crm, not "http"')
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"at": "2025-01-06T10:00:00"},
            "results[0].at: must be an ISO 8601 time with its UTC "
            'offset (e.g. 2025-01-06T09:00:00+01:00), not "2025-01-06T10:00:00"',
        ),
        (
            {"at": "yesterday"},
            "results[0].at: must be an ISO 8601 time with its UTC "
            'offset (e.g. 2025-01-06T09:00:00+01:00), not "yesterday"',
        ),
        ({"ok": "yes"}, 'results[0].ok: must be true or false, not "yes"'),
        ({"latency_ms": -1}, "results[0].latency_ms: must be at least 0, not -1"),
        ({"latency_ms": "12"}, 'results[0].latency_ms: must be a number, not "12"'),
        ({"status": 200.5}, "results[0].status: must be a whole number, not 200.5"),
        ({"attempts": 0}, "results[0].attempts: must be at least 1, not 0"),
        ({"result_id": ""}, "results[0].result_id: must not be empty"),
        ({"colour": "red"}, "results[0].colour: unknown field"),
    ],
)
def test_bad_result_field_is_named_with_the_value_it_got(
    change: dict[str, Any], message: str
) -> None:
    assert error_of(batch(result(**change))) == ("invalid_payload", message)


def test_missing_field_is_named() -> None:
    item = result()
    del item["user"]

    assert error_of(batch(item)) == ("invalid_payload", "results[0].user: is required")


def test_other_schema_version_is_unsupported() -> None:
    assert error_of(batch(schema="ctiwatch.results/2")) == (
        "unsupported_schema",
        'schema: must be ctiwatch.results/1, not "ctiwatch.results/2"',
    )


def test_missing_schema_is_unsupported() -> None:
    payload = json.loads(batch())
    del payload["schema"]

    assert error_of(json.dumps(payload).encode()) == ("unsupported_schema", "schema: is required")


def test_not_json_is_rejected_as_invalid_json() -> None:
    assert error_of(b"{not json") == (
        "invalid_json",
        "not valid JSON (key must be a string at line 1 column 2)",
    )


def test_json_that_is_not_an_object_is_rejected() -> None:
    assert error_of(b"[1, 2]") == ("invalid_payload", "the payload must be a JSON object")


def test_empty_batch_is_rejected() -> None:
    payload = json.loads(batch())
    payload["results"] = []

    assert error_of(json.dumps(payload).encode()) == (
        "invalid_payload",
        "results: must not be empty",
    )


def test_several_errors_are_all_named() -> None:
    assert error_of(batch(result(ok=1, service="fax"))) == (
        "invalid_payload",
        'results[0].service: must be click2dial or crm, not "fax"; '
        "results[0].ok: must be true or false, not 1",
    )


def test_batch_from_another_agent_than_the_topic_is_rejected() -> None:
    assert error_of(batch(), topic_agent="rtm-1") == (
        "agent_mismatch",
        'agent: "ams-1" does not match the topic\'s agent "rtm-1"',
    )


def test_unknown_topology_rejects_only_those_results_naming_them() -> None:
    decoded = decode_results(
        batch(
            result(1),
            result(2, customer="globex"),
            result(3, location="acme-utr"),
            result(4, user="mallory"),
            result(5, location="acme-rtm", user="carol"),
        ),
        TOPOLOGY,
        now=NOW,
    )

    assert [r.result_id for r in decoded.results] == ["r1", "r5"]
    assert [(e.reason, str(e)) for e in decoded.rejected] == [
        ("unknown_customer", 'results[1].customer: unknown customer "globex"'),
        ("unknown_location", 'results[2].location: customer "acme" has no location "acme-utr"'),
        (
            "unknown_user",
            'results[3].user: location "acme-ams" of customer "acme" has no user "mallory"',
        ),
    ]


def test_call_event_is_a_crm_recognition_fact_for_the_topics_customer() -> None:
    payload = encode_call(
        call_id="c-981",
        caller="+31201234567",
        location="acme-rtm",
        user="carol",
        recognised=False,
        at=datetime(2025, 1, 6, 10, 0, tzinfo=timezone(timedelta(hours=1))),
    )

    assert decode_call(payload, "acme", TOPOLOGY, now=NOW) == ProbeResult(
        result_id="call:acme:c-981",
        target=TargetKey(Service.CRM, "acme", "acme-rtm", "carol"),
        at=AT,
        ok=True,
        recognised=False,
        latency_ms=0.0,
        status=None,
        evidence="inbound call c-981 with +31201234567: not recognised",
        source=Source.CALL,
        source_id="calls",
    )


def test_call_event_for_unknown_user_is_rejected_naming_it() -> None:
    payload = encode_call(
        call_id="c-1",
        caller="+31201234567",
        location="acme-rtm",
        user="dave",
        recognised=True,
        at=AT,
    )

    with pytest.raises(PayloadError) as caught:
        decode_call(payload, "acme", TOPOLOGY, now=NOW)

    assert (caught.value.reason, str(caught.value)) == (
        "unknown_user",
        'user: location "acme-rtm" of customer "acme" has no user "dave"',
    )


def test_call_event_for_unknown_customer_is_rejected_naming_it() -> None:
    payload = encode_call(
        call_id="c-1",
        caller="+31201234567",
        location="acme-rtm",
        user="carol",
        recognised=True,
        at=AT,
    )

    with pytest.raises(PayloadError) as caught:
        decode_call(payload, "initech", TOPOLOGY, now=NOW)

    assert str(caught.value) == 'customer: unknown customer "initech"'


def test_call_event_with_bad_direction_names_it() -> None:
    payload = json.loads(
        encode_call(
            call_id="c-1",
            caller="+31201234567",
            location="acme-rtm",
            user="carol",
            recognised=True,
            at=AT,
        )
    )
    payload["direction"] = "sideways"

    with pytest.raises(PayloadError) as caught:
        decode_call(json.dumps(payload), "acme", TOPOLOGY, now=NOW)

    assert str(caught.value) == 'direction: must be inbound or outbound, not "sideways"'


def test_status_round_trip() -> None:
    status = decode_status(
        encode_status("ams-1", False, AT, "connection lost"), now=NOW, topic_agent="ams-1"
    )

    assert (status.agent, status.online, status.at, status.reason) == (
        "ams-1",
        False,
        AT,
        "connection lost",
    )


def test_status_with_unknown_value_names_it() -> None:
    payload = json.loads(encode_status("ams-1", True, AT))
    payload["status"] = "sleeping"

    with pytest.raises(PayloadError) as caught:
        decode_status(json.dumps(payload), now=NOW)

    assert str(caught.value) == 'status: must be online or offline, not "sleeping"'


def test_encoded_results_decode_to_the_same_results() -> None:
    original = [
        ProbeResult(
            result_id=f"id-{n}",
            target=TargetKey(Service.CLICK2DIAL, "acme", "acme-rtm", "carol"),
            at=AT + timedelta(seconds=n),
            ok=n % 2 == 0,
            recognised=None,
            latency_ms=12.25 * n,
            status=201 if n % 2 == 0 else None,
            evidence=f"POST http://x/dial [STATUS] ({n}) — ünïcode",
            source=Source.AGENT,
            attempts=n + 1,
            source_id="rtm-1",
        )
        for n in range(3)
    ]

    decoded = decode_results(
        encode_results("rtm-1", AT, original), TOPOLOGY, now=NOW, topic_agent="rtm-1"
    )

    assert decoded.results == original


def test_encode_result_refuses_a_naive_time() -> None:
    naive = ProbeResult(
        result_id="x",
        target=TargetKey(Service.CRM, "acme", "acme-ams", "alice"),
        at=datetime(2025, 1, 6, 9, 0),
        ok=True,
        recognised=True,
        latency_ms=1.0,
        status=200,
        evidence="",
    )

    with pytest.raises(ValueError, match="naive"):
        encode_result(naive)
