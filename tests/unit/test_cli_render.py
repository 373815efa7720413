"""How the CLI shows the service's JSON: times in Amsterdam, deadlines, errors, URLs."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from ctiwatch.apiclient import ApiError, base_url, url_for
from ctiwatch.commands.incidents import describe_api_error, due_text, local_time
from ctiwatch.commands.status import render_status

AMS = ZoneInfo("Europe/Amsterdam")


def test_local_time_shows_summer_and_winter_offsets_by_name() -> None:
    assert local_time("2026-07-01T08:00:00+00:00", AMS) == "2026-07-01 10:00 CEST"
    assert local_time("2026-12-01T08:00:00Z", AMS) == "2026-12-01 09:00 CET"
    assert local_time(None, AMS) == "-"


@pytest.mark.parametrize(
    ("detail", "name", "expected"),
    [
        ({"priority": 1, "status": "open", "repair_due": None}, "repair", "to be determined"),
        ({"priority": 3, "status": "open", "update_due": None}, "update", "best effort"),
        ({"priority": 3, "status": "open", "repair_due": None}, "repair", "best effort"),
        (
            {"status": "open", "response_due": "2026-12-01T13:00:00+00:00",
             "acknowledged_at": "2026-12-01T09:30:00+00:00"},
            "response",
            "2026-12-01 14:00 CET (responded)",
        ),
        (
            {"status": "resolved", "repair_due": "2026-12-03T09:00:00+00:00"},
            "repair",
            "2026-12-03 10:00 CET (stopped)",
        ),
        (
            {"status": "open", "update_due": "2026-12-01T13:00:00+00:00", "breaches": ["update"]},
            "update",
            "2026-12-01 14:00 CET (breached)",
        ),
    ],
)  # fmt: skip
def test_due_text_says_how_a_deadline_stands(
    detail: dict[str, object], name: str, expected: str
) -> None:
    assert due_text(detail, name, AMS) == expected


def test_api_errors_name_the_option_a_person_types() -> None:
    assert describe_api_error(ApiError(400, "text: must not be empty", "text")) == (
        "text: must not be empty (--text)"
    )
    assert describe_api_error(ApiError(400, "limit: too big", "limit")) == (
        "limit: too big (field limit)"
    )
    assert describe_api_error(ApiError(404, "incident 9 does not exist")) == (
        "incident 9 does not exist"
    )


def test_urls() -> None:
    assert base_url(" http://127.0.0.1:8080/ ") == "http://127.0.0.1:8080"
    assert url_for("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert url_for("::", 8080) == "http://[::1]:8080"
    assert url_for("ctiwatch.internal", 80) == "http://ctiwatch.internal:80"
    for bad in ("localhost:8080", "ftp://host/", "http://", "http://h:99999"):
        with pytest.raises(ValueError):
            base_url(bad)


def test_status_lists_maintenance_and_agents_never_seen() -> None:
    document = {
        "generated_at": "2026-12-01T22:30:00+01:00",
        "overall": {"state": "maintenance", "headline": "Maintenance in progress", "detail": ""},
        "customers": [],
        "agents": [{"name": "agent-1", "status": "offline", "last_seen": None, "location": ""}],
        "open_incidents": [],
        "maintenance": [
            {
                "id": 3,
                "start": "2026-12-01T22:00:00+01:00",
                "end": "2026-12-02T01:00:00+01:00",
                "services": ["crm"],
                "customers": None,
                "reason": "CRM upgrade",
                "created_by": "Demo",
                "state": "active",
            }
        ],
    }
    assert render_status(document, AMS).splitlines() == [
        "ctiwatch status at 2026-12-01 22:30 CET: Maintenance in progress",
        "",
        "nothing is monitored yet (the topology has no customers)",
        "",
        "open incidents: none",
        "",
        "agents (1):",
        "  NAME     STATUS   LOCATIONS  RESULTS  LAST SEEN  REASON",
        "  agent-1  offline  -                -  never      -",
        "",
        "maintenance (1):",
        "  #  STATE   START                 END                   SERVICES  CUSTOMERS      REASON",
        "  3  active  2026-12-01 22:00 CET  2026-12-02 01:00 CET  crm       all customers  "
        "CRM upgrade",
    ]


def test_status_shows_an_unreachable_broker_and_each_agents_results_and_reason() -> None:
    document = {
        "generated_at": "2026-12-01T10:00:00+01:00",
        "overall": {"state": "ok", "headline": "All systems operational", "detail": ""},
        "customers": [],
        "agents": [
            {
                "name": "agent-ams-1",
                "status": "offline",
                "last_seen": "2026-12-01T09:30:00+01:00",
                "location": "acme-ams, acme-rtm",
                "results_received": 25318,
                "locations": ["acme-ams", "acme-rtm"],
                "reason": "connection lost",
            }
        ],
        "open_incidents": [],
        "maintenance": [],
        "mqtt": {"broker": "127.0.0.1:1883", "state": "unreachable", "detail": "refused"},
    }
    lines = render_status(document, AMS).splitlines()
    assert lines[6:10] == [
        "mqtt broker 127.0.0.1:1883: unreachable (refused)",
        "agents (1):",
        "  NAME         STATUS   LOCATIONS          RESULTS  LAST SEEN  REASON",
        "  agent-ams-1  offline  acme-ams,acme-rtm    25318  30m ago    connection lost",
    ]


def test_status_says_when_mqtt_is_disabled() -> None:
    document = {
        "generated_at": "2026-12-01T10:00:00+01:00",
        "customers": [],
        "agents": [],
        "mqtt": {"broker": "127.0.0.1:1883", "state": "disabled", "detail": ""},
    }
    lines = render_status(document, AMS).splitlines()
    assert lines[6:8] == ["mqtt broker: disabled (no remote agents)", "agents: none"]


def test_status_says_a_down_services_recognition_is_from_before_the_outage() -> None:
    tiles = [
        {"service": "crm", "state": "down", "last_probe_at": "2026-12-01T09:59:00+01:00",
         "recognition_rate": 1.0, "calls": 12},
        {"service": "click2dial", "state": "ok", "last_probe_at": "2026-12-01T09:59:00+01:00",
         "recognition_rate": 0.5, "calls": 2},
    ]  # fmt: skip
    document = {
        "generated_at": "2026-12-01T10:00:00+01:00",
        "customers": [{"id": "acme", "locations": [{"id": "acme-ams", "services": tiles}]}],
    }
    lines = render_status(document, AMS).splitlines()
    assert lines[2:5] == [
        "CUSTOMER  LOCATION  SERVICE          STATE  LAST PROBE  RECOGNISED (ANSWERED, 1H)"
        "             P95  INCIDENT  DETAIL",
        "acme      acme-ams  CRM integration  down   1m ago      "
        "100.0% (12 calls, before the outage)    -  -",
        "acme      acme-ams  Click2Dial       ok     1m ago      50.0% (2 calls)"
        "                         -  -",
    ]
