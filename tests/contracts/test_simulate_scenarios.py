"""``ctiwatch simulate`` (simulate.md) on the shipped scenarios, driven as a subprocess.

Every expected value is derived by hand from the spec before it was compared with the output;
the reasoning is the comment above each test. Facts every derivation uses:

* Rounds start at ``start`` and every ``probe_interval``; a result's instant is its round's.
* A failed round takes 3 s: three attempts (``retries: 2``) at t, t+1 s and t+3 s (backoff
  1 s, then 2 s); a good answer takes no time. The third failed round of an outage is known at
  round + 3 s: that is when the incident opens and its report goes out (``opened_at``). The
  third good round clears an outage condition at its own instant.
* SLA (sla.md): P1 response and update 4 support hours, P2 8 support hours and repair
  2 working days from the day after, P3 response 1 working day (8.5 support hours); support
  hours 08:30-17:00 Mon-Fri. Warnings at 75% of the support time.
* Escalation (docs/simulate.md): no steps configured, so the chain is first line (the on-call
  numbers, paged by the opening) then third line (CloudCTI: the report again, and for P1 inside
  support hours a call to the support line) 10 minutes later for P1, 30 for P2, none for P3.
* Routing (sla.md): report e-mail to support@cloudcti.nl at opening; SMS to on-call for
  every alert (escalation pages and contingency included), voice to on-call for P1 (but never
  for `resolved`); P1 opened/raised also calls the support line inside support hours;
  contingency: +31356990244 outside support hours, +31356990230 inside. Messages of one
  trigger: e-mail, then SMS, then voice; an escalation page lists the step's recipients before
  on-call, a contingency call the line before on-call.
* Paging (sla.md "Paging"): on-call SMS about a P3/P4 raised outside support hours are held
  and sent at the next opening, one digest per person (listed then, with `held_since`);
  messages to one person at one instant (one step of the pipeline) are one SMS and at most one
  call, listed once with the kind of the most urgent part and the others in `also` (urgency,
  docs/simulate.md: contingency, escalated, opened, raised, breaches, warnings, agent_offline,
  resolved, agent_back); every part is in `parts`. E-mails are never combined or held.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ctiwatch.config import Config, load_config
from ctiwatch.settings import policy_from_config
from sla.deadlines import compute_deadlines
from sla.priority import Priority

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "config" / "scenarios"
SUPPORT_MAIL = "support@cloudcti.nl"
SUPPORT_LINE = "+31356990230"
CONTINGENCY_LINE = "+31356990244"
ONCALL = "+31611111111"
ONCALL_2 = "+31622222222"

Alert = tuple[str, str, str, int | None, str]
Combined = tuple[str, str, str, int | None, str, list[str]]


def simulate(
    scenario: Path | str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ctiwatch", "simulate", str(scenario), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


@functools.cache
def _run(name: str) -> subprocess.CompletedProcess[str]:
    return simulate(SCENARIOS / f"{name}.yaml", env={"PYTHONHASHSEED": "2"})


def output(name: str) -> dict[str, Any]:
    result = _run(name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def incidents(name: str) -> list[dict[str, Any]]:
    """Each incident without its timeline (its wording is not part of the contract)."""
    return [
        {key: value for key, value in incident.items() if key != "timeline"}
        for incident in output(name)["incidents"]
    ]


def alerts(name: str) -> list[Alert | Combined]:
    """Each alert as (at, channel, to, incident, kind), and a combined one with its `also`."""
    return [
        (a["at"], a["channel"], a["to"], a["incident"], a["kind"])
        + ((a["also"],) if "also" in a else ())
        for a in output(name)["alerts"]
    ]


def scope(service: str, location: str, user: str | None, priority: int, condition: str) -> Any:
    return {
        "service": service,
        "location": location,
        "user": user,
        "priority": priority,
        "condition": condition,
    }


def incident(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "customer": "acme",
        "automatic": True,
        "acknowledged_at": None,
        "resolved_by": "auto",
        "repair_due": None,
        "breaches": [],
    }
    return base | fields


def scope_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in entry.items() if k not in ("joined_at", "cleared_at")}
        for entry in document["scope"]
    ]


def without_scope_times(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item | {"scope": scope_of(item)} for item in items]


# --- P1: a whole location down --------------------------------------------------------------


# click2dial fails for alice, bob and carol from Tue 10:00 to 12:00. Rounds 10:00, 10:01 and
# 10:02 fail for all three: at 10:02:03 every user is down -> one location condition, P1.
# Report 10:02:03 (inside support hours): e-mail, SMS to both on-call numbers, voice to both
# and to the support line. Response due 4 support hours later, 14:02:03; the acknowledgement at
# 10:10 stops the response clock, restarts the update clock (due 14:10) and stops escalation
# (third line would have been paged at 10:12:03). Rounds 12:00, 12:01, 12:02 answer: cleared
# and resolved at 12:02:00, the resolved e-mail and SMS go out. No warning: 75% of the response
# time would be 13:02:03, after the resolution.
def test_full_outage_of_a_location_is_a_p1_reported_at_the_third_failed_round() -> None:
    assert without_scope_times(incidents("full-outage-location")) == [
        incident(
            number=1,
            priority=1,
            opened_at="2026-12-01T10:02:03+01:00",
            acknowledged_at="2026-12-01T10:10:00+01:00",
            resolved_at="2026-12-01T12:02:00+01:00",
            response_due="2026-12-01T14:02:03+01:00",
            update_due="2026-12-01T14:10:00+01:00",
            scope=[scope("click2dial", "acme-ams", None, 1, "location_unavailable")],
        )
    ]
    assert alerts("full-outage-location") == [
        ("2026-12-01T10:02:03+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-01T10:02:03+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-01T10:02:03+01:00", "sms", ONCALL_2, 1, "opened"),
        ("2026-12-01T10:02:03+01:00", "voice", ONCALL, 1, "opened"),
        ("2026-12-01T10:02:03+01:00", "voice", ONCALL_2, 1, "opened"),
        ("2026-12-01T10:02:03+01:00", "voice", SUPPORT_LINE, 1, "opened"),
        ("2026-12-01T12:02:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-01T12:02:00+01:00", "sms", ONCALL, 1, "resolved"),
        ("2026-12-01T12:02:00+01:00", "sms", ONCALL_2, 1, "resolved"),
    ]


# --- P2: one user down ------------------------------------------------------------------------


# crm fails for alice only, Tue 14:00-15:00; bob and carol answer, so the location is not down.
# Alice's third failed round (14:02) is known at 14:02:03: P2. 8 support hours from Tue
# 14:02:03: 2:57:57 left on Tuesday, 5:02:03 from Wednesday 08:30 -> Wed 13:32:03 (response and
# update). Repair: 2 working days from the day after (Wed) -> Thu 2026-12-03 17:00. Nobody
# acknowledges: third line at 14:02:03 + 30 min: its e-mail, and an SMS telling on-call (P2:
# no voice, so no support-line call either). Resolved at 15:02:00.
def test_one_user_down_is_a_p2_with_repair_due_two_working_days_later() -> None:
    assert without_scope_times(incidents("one-user-down")) == [
        incident(
            number=1,
            priority=2,
            opened_at="2026-12-01T14:02:03+01:00",
            resolved_at="2026-12-01T15:02:00+01:00",
            response_due="2026-12-02T13:32:03+01:00",
            update_due="2026-12-02T13:32:03+01:00",
            repair_due="2026-12-03T17:00:00+01:00",
            scope=[scope("crm", "acme-ams", "alice", 2, "user_unavailable")],
        )
    ]
    assert alerts("one-user-down") == [
        ("2026-12-01T14:02:03+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-01T14:02:03+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-01T14:32:03+01:00", "email", SUPPORT_MAIL, 1, "escalated"),
        ("2026-12-01T14:32:03+01:00", "sms", ONCALL, 1, "escalated"),
        ("2026-12-01T15:02:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-01T15:02:00+01:00", "sms", ONCALL, 1, "resolved"),
    ]


# --- P2: degraded recognition -------------------------------------------------------------


# Four users, rounds every 10 minutes from 09:00. The trailing hour at 10:00 is the minutes
# 09:01-10:00: rounds 09:10 ... 09:50 (20 recognised calls) plus the 10:00 round, where every
# lookup goes unrecognised. After the third miss: 20/23 = 87.0% < 90% with >= 20 calls -> P2
# at 10:00:00 (each user has one miss: no miss rule applies). The 10:00 misses leave the window
# at 11:00 (then 20/20 recognised), the rate has to stay healthy 30 minutes: cleared 11:30:00.
# 8 support hours from Tue 10:00 -> Wed 09:30; repair Thu 17:00. Third line at 10:30 (P2:
# e-mail, SMS to on-call).
def test_recognition_below_90_percent_at_a_location_is_a_p2() -> None:
    assert without_scope_times(incidents("degraded-recognition")) == [
        incident(
            number=1,
            priority=2,
            opened_at="2026-12-01T10:00:00+01:00",
            resolved_at="2026-12-01T11:30:00+01:00",
            response_due="2026-12-02T09:30:00+01:00",
            update_due="2026-12-02T09:30:00+01:00",
            repair_due="2026-12-03T17:00:00+01:00",
            scope=[scope("crm", "acme-ams", None, 2, "location_degraded")],
        )
    ]
    assert alerts("degraded-recognition") == [
        ("2026-12-01T10:00:00+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-01T10:00:00+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-01T10:30:00+01:00", "email", SUPPORT_MAIL, 1, "escalated"),
        ("2026-12-01T10:30:00+01:00", "sms", ONCALL, 1, "escalated"),
        ("2026-12-01T11:30:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-01T11:30:00+01:00", "sms", ONCALL, 1, "resolved"),
    ]


# --- P3: a few misses -------------------------------------------------------------------------


def expected_misses() -> list[str]:
    """Which of bob's lookups 09:00-09:59 miss: one draw of the seeded RNG per lookup."""
    import random

    rng = random.Random(17)
    return [f"09:{minute:02d}" for minute in range(60) if rng.random() < 0.1]


# Seed 17 makes bob's misses fall at 09:08, 09:18, 09:30, 09:38, 09:40 (5: within 3-9 in 24 h).
# The third miss (09:30:00) opens a P3; misses 4 and 5 keep it; 30 minutes without a miss after
# 09:40 clear it: resolved 10:10:00. P3: response 1 working day -> Wed 09:30; no update or
# repair target; no escalation for P3.
def test_three_to_nine_misses_of_a_user_are_a_p3() -> None:
    assert expected_misses() == ["09:08", "09:18", "09:30", "09:38", "09:40"]
    assert without_scope_times(incidents("few-misses-a-day")) == [
        incident(
            number=1,
            priority=3,
            opened_at="2026-12-01T09:30:00+01:00",
            resolved_at="2026-12-01T10:10:00+01:00",
            response_due="2026-12-02T09:30:00+01:00",
            update_due=None,
            scope=[scope("crm", "acme-ams", "bob", 3, "some_misses")],
        )
    ]
    assert alerts("few-misses-a-day") == [
        ("2026-12-01T09:30:00+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-01T09:30:00+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-01T10:10:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-01T10:10:00+01:00", "sms", ONCALL, 1, "resolved"),
    ]


# --- maintenance ----------------------------------------------------------------------------


# The outage (22:30-01:00) lies inside the window (22:00-02:00): it opens nothing, sends nothing.
def test_outage_inside_a_maintenance_window_opens_nothing_and_sends_nothing() -> None:
    assert output("outage-in-maintenance") == {"incidents": [], "alerts": []}


# The outage (22:30-03:00) outlasts the window (22:00-02:00): the P1 (known 22:32:03) is held
# back and opens at the window's end, Thu 02:00:00, outside support hours: no support line.
# 4 support hours from Thu 08:30 -> 12:30. Third line at 02:10: e-mail, and on-call gets an SMS
# and a voice call (P1); at night its support-line call is skipped. Rounds 03:00-03:02 answer:
# resolved 03:02:00.
def test_outage_that_outlasts_maintenance_opens_when_the_window_ends() -> None:
    assert without_scope_times(incidents("outage-outlasts-maintenance")) == [
        incident(
            number=1,
            priority=1,
            opened_at="2026-12-03T02:00:00+01:00",
            resolved_at="2026-12-03T03:02:00+01:00",
            response_due="2026-12-03T12:30:00+01:00",
            update_due="2026-12-03T12:30:00+01:00",
            scope=[scope("click2dial", "acme-ams", None, 1, "location_unavailable")],
        )
    ]
    assert alerts("outage-outlasts-maintenance") == [
        ("2026-12-03T02:00:00+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-03T02:00:00+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-03T02:00:00+01:00", "voice", ONCALL, 1, "opened"),
        ("2026-12-03T02:10:00+01:00", "email", SUPPORT_MAIL, 1, "escalated"),
        ("2026-12-03T02:10:00+01:00", "sms", ONCALL, 1, "escalated"),
        ("2026-12-03T02:10:00+01:00", "voice", ONCALL, 1, "escalated"),
        ("2026-12-03T03:02:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-03T03:02:00+01:00", "sms", ONCALL, 1, "resolved"),
    ]


# --- contingency ----------------------------------------------------------------------------


# acme's click2dial is down from Tue 22:00 (P1 at 22:02:03), globex's crm from 22:30 (P1 at
# 22:32:03): two end-customers with an open P1, outside support hours -> the contingency line
# is called at 22:32:03, and on-call gets an SMS and (P1) a voice call after it. Globex's
# `opened` page and the `contingency` notice come from one step at one instant: on-call gets
# one SMS and one call, each listed as `contingency` (more urgent than `opened`) with
# `also: [opened]`, where the contingency messages stood (the SMS before the line's call, the
# call to on-call after it), no longer an `opened` SMS and call before them. Both P1s
# reported at night: due Wed 12:30. acme resolves 23:02:00, globex 23:32:00; third line for
# each 10 minutes after its opening: e-mail, SMS and voice to on-call, no support line at night.
def test_two_customers_with_a_p1_at_night_call_the_contingency_line() -> None:
    assert without_scope_times(incidents("two-customers-down-at-night")) == [
        incident(
            number=1,
            priority=1,
            opened_at="2026-12-01T22:02:03+01:00",
            resolved_at="2026-12-01T23:02:00+01:00",
            response_due="2026-12-02T12:30:00+01:00",
            update_due="2026-12-02T12:30:00+01:00",
            scope=[scope("click2dial", "acme-ams", None, 1, "location_unavailable")],
        ),
        incident(
            number=2,
            customer="globex",
            priority=1,
            opened_at="2026-12-01T22:32:03+01:00",
            resolved_at="2026-12-01T23:32:00+01:00",
            response_due="2026-12-02T12:30:00+01:00",
            update_due="2026-12-02T12:30:00+01:00",
            scope=[scope("crm", "globex-utr", None, 1, "location_unavailable")],
        ),
    ]
    assert alerts("two-customers-down-at-night") == [
        ("2026-12-01T22:02:03+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-01T22:02:03+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-01T22:02:03+01:00", "voice", ONCALL, 1, "opened"),
        ("2026-12-01T22:12:03+01:00", "email", SUPPORT_MAIL, 1, "escalated"),
        ("2026-12-01T22:12:03+01:00", "sms", ONCALL, 1, "escalated"),
        ("2026-12-01T22:12:03+01:00", "voice", ONCALL, 1, "escalated"),
        ("2026-12-01T22:32:03+01:00", "email", SUPPORT_MAIL, 2, "report"),
        ("2026-12-01T22:32:03+01:00", "sms", ONCALL, 2, "contingency", ["opened"]),
        ("2026-12-01T22:32:03+01:00", "voice", CONTINGENCY_LINE, 2, "contingency"),
        ("2026-12-01T22:32:03+01:00", "voice", ONCALL, 2, "contingency", ["opened"]),
        ("2026-12-01T22:42:03+01:00", "email", SUPPORT_MAIL, 2, "escalated"),
        ("2026-12-01T22:42:03+01:00", "sms", ONCALL, 2, "escalated"),
        ("2026-12-01T22:42:03+01:00", "voice", ONCALL, 2, "escalated"),
        ("2026-12-01T23:02:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-01T23:02:00+01:00", "sms", ONCALL, 1, "resolved"),
        ("2026-12-01T23:32:00+01:00", "email", SUPPORT_MAIL, 2, "resolved"),
        ("2026-12-01T23:32:00+01:00", "sms", ONCALL, 2, "resolved"),
    ]


# The same by day (10:00 / 10:30): the contingency goes to the normal support line (then the
# on-call voice call, P1), and the P1 openings and third-line pages call the support line too.
# At 10:32:03 globex's opening and the contingency come from one step: the support line would
# be called twice (the P1 opening inside support hours, then the contingency) and on-call
# texted and called twice; each gets one message per channel, listed as `contingency` with
# `also: [opened]`.
def test_two_customers_with_a_p1_by_day_call_the_support_line() -> None:
    result = alerts("two-customers-down-by-day")
    assert [a for a in result if a[0] == "2026-12-01T10:32:03+01:00"] == [
        ("2026-12-01T10:32:03+01:00", "email", SUPPORT_MAIL, 2, "report"),
        ("2026-12-01T10:32:03+01:00", "sms", ONCALL, 2, "contingency", ["opened"]),
        ("2026-12-01T10:32:03+01:00", "voice", SUPPORT_LINE, 2, "contingency", ["opened"]),
        ("2026-12-01T10:32:03+01:00", "voice", ONCALL, 2, "contingency", ["opened"]),
    ]
    assert CONTINGENCY_LINE not in {a[2] for a in result}
    assert [
        (i["number"], i["opened_at"], i["response_due"])
        for i in incidents("two-customers-down-by-day")
    ] == [
        (1, "2026-12-01T10:02:03+01:00", "2026-12-01T14:02:03+01:00"),
        (2, "2026-12-01T10:32:03+01:00", "2026-12-01T14:32:03+01:00"),
    ]


# --- paging: who is woken, and how often -----------------------------------------------------


# bob's lookups miss at 02:08, 02:18, 02:30, 02:38 and 02:40 (seed 17, the draws of
# few-misses-a-day seven hours earlier: the same one draw per lookup of bob, in order). The
# third miss opens a P3 at 02:30:00 Wed, outside support hours; 30 minutes after the last miss
# it resolves, 03:10:00. Response: 1 working day, counted from the opening of Wed 08:30 ->
# Wed 17:00. The e-mails (report, resolved) go to the support address at once: they wake no
# one. On-call's `opened` and `resolved` SMS are held; at the opening, Wed 08:30:00, each of
# the two on-call numbers gets one digest SMS: `opened` (more urgent than `resolved`) with
# `also: [resolved]`, `held_since` the first held part, 02:30:00.
def test_a_p3_at_night_is_held_until_the_opening_and_sent_as_one_digest_per_person() -> None:
    assert without_scope_times(incidents("p3-at-night-held")) == [
        incident(
            number=1,
            priority=3,
            opened_at="2026-12-02T02:30:00+01:00",
            resolved_at="2026-12-02T03:10:00+01:00",
            response_due="2026-12-02T17:00:00+01:00",
            update_due=None,
            scope=[scope("crm", "acme-ams", "bob", 3, "some_misses")],
        )
    ]
    assert alerts("p3-at-night-held") == [
        ("2026-12-02T02:30:00+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-02T03:10:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-02T08:30:00+01:00", "sms", ONCALL, 1, "opened", ["resolved"]),
        ("2026-12-02T08:30:00+01:00", "sms", ONCALL_2, 1, "opened", ["resolved"]),
    ]
    digests = output("p3-at-night-held")["alerts"][2:]
    for digest in digests:
        assert digest["held_since"] == "2026-12-02T02:30:00+01:00"
        assert digest["parts"] == [
            {"incident": 1, "kind": "opened", "at": "2026-12-02T02:30:00+01:00"},
            {"incident": 1, "kind": "resolved", "at": "2026-12-02T03:10:00+01:00"},
        ]


# As two-customers-down-at-night, with two on-call numbers. acme's P1 opens 22:02:03 (SMS and
# call to each on-call number), its third line 22:12:03. Globex's P1 at 22:32:03 makes two
# end-customers with an open P1 outside support hours: the contingency line is called in the
# same step. Each on-call number would get an `opened` SMS and call and a `contingency` SMS and
# call; it gets one SMS and one call, listed as `contingency` with `also: [opened]`, where the
# contingency messages stood: e-mail report, the SMS, the contingency line's call, then the
# on-call calls. Globex's third line at 22:42:03; resolutions 23:02:00 and 23:32:00.
def test_a_second_customers_p1_reaches_each_person_as_one_sms_and_one_call() -> None:
    assert [
        (i["number"], i["customer"], i["priority"], i["opened_at"])
        for i in incidents("combined-at-second-p1")
    ] == [
        (1, "acme", 1, "2026-12-01T22:02:03+01:00"),
        (2, "globex", 1, "2026-12-01T22:32:03+01:00"),
    ]
    oncall = [ONCALL, ONCALL_2]

    def each(at: str, channel: str, incident: int, kind: str) -> list[Alert]:
        return [(at, channel, to, incident, kind) for to in oncall]

    both = ["opened"]
    assert alerts("combined-at-second-p1") == [
        ("2026-12-01T22:02:03+01:00", "email", SUPPORT_MAIL, 1, "report"),
        *each("2026-12-01T22:02:03+01:00", "sms", 1, "opened"),
        *each("2026-12-01T22:02:03+01:00", "voice", 1, "opened"),
        ("2026-12-01T22:12:03+01:00", "email", SUPPORT_MAIL, 1, "escalated"),
        *each("2026-12-01T22:12:03+01:00", "sms", 1, "escalated"),
        *each("2026-12-01T22:12:03+01:00", "voice", 1, "escalated"),
        ("2026-12-01T22:32:03+01:00", "email", SUPPORT_MAIL, 2, "report"),
        ("2026-12-01T22:32:03+01:00", "sms", ONCALL, 2, "contingency", both),
        ("2026-12-01T22:32:03+01:00", "sms", ONCALL_2, 2, "contingency", both),
        ("2026-12-01T22:32:03+01:00", "voice", CONTINGENCY_LINE, 2, "contingency"),
        ("2026-12-01T22:32:03+01:00", "voice", ONCALL, 2, "contingency", both),
        ("2026-12-01T22:32:03+01:00", "voice", ONCALL_2, 2, "contingency", both),
        ("2026-12-01T22:42:03+01:00", "email", SUPPORT_MAIL, 2, "escalated"),
        *each("2026-12-01T22:42:03+01:00", "sms", 2, "escalated"),
        *each("2026-12-01T22:42:03+01:00", "voice", 2, "escalated"),
        ("2026-12-01T23:02:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        *each("2026-12-01T23:02:00+01:00", "sms", 1, "resolved"),
        ("2026-12-01T23:32:00+01:00", "email", SUPPORT_MAIL, 2, "resolved"),
        *each("2026-12-01T23:32:00+01:00", "sms", 2, "resolved"),
    ]
    combined = [a for a in output("combined-at-second-p1")["alerts"] if "also" in a]
    assert {tuple((p["incident"], p["kind"]) for p in a["parts"]) for a in combined} == {
        ((2, "contingency"), (2, "opened"))
    }


# A P2 reported Mon 2026-11-30 14:02:03 (alice's click2dial down until Wed 17:30). Response due
# Tue 13:32:03 (acknowledged Mon 15:00: stopped). The update clock restarts at the ack (due Tue
# 14:30) and at the update Tue 10:00: 7 h on Tuesday + 1 h -> Wed 09:30; 75% (6 h) -> Tue
# 16:00. Repair: Tue 08:30 to Wed 17:00 (17 support hours); 75% = 12.75 h -> Wed 12:45; the
# breach at Wed 17:00 expires the MTTR -> contingency. 17:00 is the end of support hours, not
# inside them -> the contingency line (P2: no voice call to on-call). On-call's repair breach
# SMS and contingency SMS of 17:00 come from one step: one SMS, listed as `contingency` (more
# urgent) with `also: [repair_breach]`. Third line at 14:32:03,
# before the acknowledgement: e-mail and an SMS to on-call (P2: no voice).
def test_expired_repair_deadline_calls_the_contingency_line() -> None:
    assert without_scope_times(incidents("p2-repair-expired")) == [
        incident(
            number=1,
            priority=2,
            opened_at="2026-11-30T14:02:03+01:00",
            acknowledged_at="2026-11-30T15:00:00+01:00",
            resolved_at="2026-12-02T17:32:00+01:00",
            response_due="2026-12-01T13:32:03+01:00",
            update_due="2026-12-02T09:30:00+01:00",
            repair_due="2026-12-02T17:00:00+01:00",
            breaches=["update", "repair"],
            scope=[scope("click2dial", "acme-ams", "alice", 2, "user_unavailable")],
        )
    ]
    assert alerts("p2-repair-expired") == [
        ("2026-11-30T14:02:03+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-11-30T14:02:03+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-11-30T14:32:03+01:00", "email", SUPPORT_MAIL, 1, "escalated"),
        ("2026-11-30T14:32:03+01:00", "sms", ONCALL, 1, "escalated"),
        ("2026-12-01T16:00:00+01:00", "sms", ONCALL, 1, "update_warning"),
        ("2026-12-02T09:30:00+01:00", "sms", ONCALL, 1, "update_breach"),
        ("2026-12-02T12:45:00+01:00", "sms", ONCALL, 1, "repair_warning"),
        ("2026-12-02T17:00:00+01:00", "sms", ONCALL, 1, "contingency", ["repair_breach"]),
        ("2026-12-02T17:00:00+01:00", "voice", CONTINGENCY_LINE, 1, "contingency"),
        ("2026-12-02T17:32:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-02T17:32:00+01:00", "sms", ONCALL, 1, "resolved"),
    ]


# --- SLA timers over a weekend ----------------------------------------------------------------


# P1 known Fri 2026-12-04 18:02:03 (outage from 18:00), nobody acknowledges. The clocks run
# only in support hours: 4 support hours from Mon 08:30 -> response and update due Mon 12:30;
# 75% (3 h) -> warnings Mon 11:30; breaches Mon 12:30 (SMS + voice to on-call: P1). The two
# warnings fall due at one instant, in one step: on-call gets one SMS and one call carrying
# both, listed as `response_warning` (response before update in urgency) with
# `also: [update_warning]`; the same for the two breaches at 12:30. Third line
# at 18:12:03: e-mail, SMS + voice to on-call, no support-line call (outside support hours).
# The outage ends Mon 13:00: resolved 13:02 (SMS only, no voice even for a P1).
def test_unacknowledged_p1_on_friday_evening_warns_and_breaches_on_monday() -> None:
    assert without_scope_times(incidents("p1-unacknowledged-weekend")) == [
        incident(
            number=1,
            priority=1,
            opened_at="2026-12-04T18:02:03+01:00",
            resolved_at="2026-12-07T13:02:00+01:00",
            response_due="2026-12-07T12:30:00+01:00",
            update_due="2026-12-07T12:30:00+01:00",
            breaches=["response", "update"],
            scope=[scope("click2dial", "acme-ams", None, 1, "location_unavailable")],
        )
    ]
    assert alerts("p1-unacknowledged-weekend") == [
        ("2026-12-04T18:02:03+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-04T18:02:03+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-04T18:02:03+01:00", "voice", ONCALL, 1, "opened"),
        ("2026-12-04T18:12:03+01:00", "email", SUPPORT_MAIL, 1, "escalated"),
        ("2026-12-04T18:12:03+01:00", "sms", ONCALL, 1, "escalated"),
        ("2026-12-04T18:12:03+01:00", "voice", ONCALL, 1, "escalated"),
        ("2026-12-07T11:30:00+01:00", "sms", ONCALL, 1, "response_warning", ["update_warning"]),
        ("2026-12-07T11:30:00+01:00", "voice", ONCALL, 1, "response_warning", ["update_warning"]),
        ("2026-12-07T12:30:00+01:00", "sms", ONCALL, 1, "response_breach", ["update_breach"]),
        ("2026-12-07T12:30:00+01:00", "voice", ONCALL, 1, "response_breach", ["update_breach"]),
        ("2026-12-07T13:02:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-07T13:02:00+01:00", "sms", ONCALL, 1, "resolved"),
    ]


# --- a priority raise -----------------------------------------------------------------------


# alice's crm is down from 10:00 (P2 at 10:02:03), bob's from 10:15: at 10:17:03 every user of
# the location is down -> the location condition (P1) replaces alice's, the incident is raised
# and its clocks restart from 10:17:03: response and update due 14:17:03, no repair target.
# The raise pages on-call (SMS, voice) and the support line; escalation restarts: third line
# (e-mail, support line, then SMS + voice to on-call) at 10:27:03, replacing the P2's step due
# at 10:32:03.
def test_priority_raise_restarts_the_sla_clocks_from_the_raise() -> None:
    assert without_scope_times(incidents("priority-raised")) == [
        incident(
            number=1,
            priority=1,
            opened_at="2026-12-01T10:02:03+01:00",
            resolved_at="2026-12-01T12:02:00+01:00",
            response_due="2026-12-01T14:17:03+01:00",
            update_due="2026-12-01T14:17:03+01:00",
            scope=[
                scope("crm", "acme-ams", None, 1, "location_unavailable"),
                scope("crm", "acme-ams", "alice", 2, "user_unavailable"),
            ],
        )
    ]
    document = output("priority-raised")["incidents"][0]
    assert [
        (e["service"], e["user"], e["joined_at"], e["cleared_at"]) for e in document["scope"]
    ] == [
        ("crm", None, "2026-12-01T10:17:03+01:00", "2026-12-01T12:02:00+01:00"),
        ("crm", "alice", "2026-12-01T10:02:03+01:00", "2026-12-01T10:17:03+01:00"),
    ]
    assert alerts("priority-raised") == [
        ("2026-12-01T10:02:03+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-01T10:02:03+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-01T10:17:03+01:00", "sms", ONCALL, 1, "raised"),
        ("2026-12-01T10:17:03+01:00", "voice", ONCALL, 1, "raised"),
        ("2026-12-01T10:17:03+01:00", "voice", SUPPORT_LINE, 1, "raised"),
        ("2026-12-01T10:27:03+01:00", "email", SUPPORT_MAIL, 1, "escalated"),
        ("2026-12-01T10:27:03+01:00", "sms", ONCALL, 1, "escalated"),
        ("2026-12-01T10:27:03+01:00", "voice", SUPPORT_LINE, 1, "escalated"),
        ("2026-12-01T10:27:03+01:00", "voice", ONCALL, 1, "escalated"),
        ("2026-12-01T12:02:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-01T12:02:00+01:00", "sms", ONCALL, 1, "resolved"),
    ]


# --- sources kept apart ----------------------------------------------------------------------


def sourced(
    service: str, location: str, user: str | None, priority: int, condition: str, source: str
) -> Any:
    return scope(service, location, user, priority, condition) | {"source": source}


# The agent ams-agent-1 probes acme-ams (alice, bob, carol) at hh:mm:30, half an interval after
# the central prober. click2dial fails for the agent only, Tue 10:00-12:00: the central rounds
# answer 201 all along, and interleaved with the agent's 503s they would have hidden them in one
# shared series. The agent's own rounds 10:00:30, 10:01:30 and 10:02:30 fail for all three (3 s
# each with the retries): at 10:02:33 every user the agent probes is down -> P1, source the
# agent. Report 10:02:33: e-mail, SMS and voice to on-call, voice to the support line (inside
# support hours). Response due 4 support hours later, 14:02:33; acknowledged 10:10 (update due
# 14:10, escalation stops). The agent's third good round, 12:02:30, clears it: resolved.
def test_an_outage_seen_only_by_an_agent_opens_a_p1_while_central_sees_200s() -> None:
    assert without_scope_times(incidents("outage-seen-by-agent-only")) == [
        incident(
            number=1,
            priority=1,
            opened_at="2026-12-01T10:02:33+01:00",
            acknowledged_at="2026-12-01T10:10:00+01:00",
            resolved_at="2026-12-01T12:02:30+01:00",
            response_due="2026-12-01T14:02:33+01:00",
            update_due="2026-12-01T14:10:00+01:00",
            scope=[
                sourced("click2dial", "acme-ams", None, 1, "location_unavailable", "ams-agent-1")
            ],
        )
    ]
    assert alerts("outage-seen-by-agent-only") == [
        ("2026-12-01T10:02:33+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-01T10:02:33+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-01T10:02:33+01:00", "voice", ONCALL, 1, "opened"),
        ("2026-12-01T10:02:33+01:00", "voice", SUPPORT_LINE, 1, "opened"),
        ("2026-12-01T12:02:30+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-01T12:02:30+01:00", "sms", ONCALL, 1, "resolved"),
    ]


# The same outage seen only by the central prober (fault sources: [central]) while the agent at
# the site gets 201s: the agent's good rounds at hh:mm:30 do not break the central series.
# Central rounds 10:00, 10:01, 10:02 fail for all three -> P1 at 10:02:03, source central;
# response due 14:02:03; the third good central round, 12:02:00, resolves it.
def test_an_outage_seen_only_centrally_opens_a_p1_while_the_agent_sees_200s() -> None:
    assert without_scope_times(incidents("outage-seen-centrally-only")) == [
        incident(
            number=1,
            priority=1,
            opened_at="2026-12-01T10:02:03+01:00",
            acknowledged_at="2026-12-01T10:10:00+01:00",
            resolved_at="2026-12-01T12:02:00+01:00",
            response_due="2026-12-01T14:02:03+01:00",
            update_due="2026-12-01T14:10:00+01:00",
            scope=[sourced("click2dial", "acme-ams", None, 1, "location_unavailable", "central")],
        )
    ]
    assert alerts("outage-seen-centrally-only") == [
        ("2026-12-01T10:02:03+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-01T10:02:03+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-01T10:02:03+01:00", "voice", ONCALL, 1, "opened"),
        ("2026-12-01T10:02:03+01:00", "voice", SUPPORT_LINE, 1, "opened"),
        ("2026-12-01T12:02:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-01T12:02:00+01:00", "sms", ONCALL, 1, "resolved"),
    ]


def test_scenarios_without_agents_name_no_source() -> None:
    [item] = output("full-outage-location")["incidents"]
    assert "source" not in item["scope"][0]


# --- a person's resolve while the outage goes on ---------------------------------------------


# click2dial down for alice, bob and carol, Tue 10:00-12:00: P1 at 10:02:03 (as in
# full-outage-location), nobody acknowledges, so the third line is paged 10 minutes later,
# 10:12:03 (e-mail, SMS, the support line and on-call by voice: P1 in support hours). Sanne
# resolves it at 10:30:00 with a reason; the outage still holds, so the resolve is forced (a
# scenario's resolve is a confirmed one): resolved by a person, the location condition forgotten
# and its scope entry closed at 10:30:00; resolved alerts (e-mail, SMS). The round of 10:30 has
# its failures known at 10:30:03, after the resolve, so it is the first of the new series:
# 10:30, 10:31, 10:32 -> a new P1, incident 2, at 10:32:03 (three rounds after the resolve), its
# opening naming incident 1. Response due 14:32:03; third line at 10:42:03; the third good round
# after the outage, 12:02:00, resolves it automatically.
def test_a_forced_resolve_during_an_outage_is_followed_by_a_new_incident_naming_it() -> None:
    assert without_scope_times(incidents("forced-resolve-during-outage")) == [
        incident(
            number=1,
            priority=1,
            opened_at="2026-12-01T10:02:03+01:00",
            resolved_at="2026-12-01T10:30:00+01:00",
            resolved_by="person",
            response_due="2026-12-01T14:02:03+01:00",
            update_due="2026-12-01T14:02:03+01:00",
            scope=[scope("click2dial", "acme-ams", None, 1, "location_unavailable")],
        ),
        incident(
            number=2,
            priority=1,
            opened_at="2026-12-01T10:32:03+01:00",
            resolved_at="2026-12-01T12:02:00+01:00",
            response_due="2026-12-01T14:32:03+01:00",
            update_due="2026-12-01T14:32:03+01:00",
            scope=[scope("click2dial", "acme-ams", None, 1, "location_unavailable")],
        ),
    ]
    first, second = output("forced-resolve-during-outage")["incidents"]
    assert [entry["cleared_at"] for entry in first["scope"]] == ["2026-12-01T10:30:00+01:00"]
    resolved = [e for e in first["timeline"] if e["kind"] == "resolved"]
    assert [(e["at"], e["by"]) for e in resolved] == [("2026-12-01T10:30:00+01:00", "Sanne")]
    assert resolved[0]["detail"].startswith(
        "resolved by Sanne: customer says it works; forced while still held, forgotten and "
        "watched anew: click2dial acme-ams location unavailable (P1)"
    )
    opened = second["timeline"][0]
    assert (opened["at"], opened["kind"]) == ("2026-12-01T10:32:03+01:00", "opened")
    assert opened["detail"].endswith(
        "; follows incident 1, resolved by Sanne while "
        "click2dial acme-ams location unavailable still held"
    )
    third_line = [SUPPORT_MAIL, ONCALL, SUPPORT_LINE, ONCALL]
    channels = ["email", "sms", "voice", "voice"]
    assert alerts("forced-resolve-during-outage") == [
        ("2026-12-01T10:02:03+01:00", "email", SUPPORT_MAIL, 1, "report"),
        ("2026-12-01T10:02:03+01:00", "sms", ONCALL, 1, "opened"),
        ("2026-12-01T10:02:03+01:00", "voice", ONCALL, 1, "opened"),
        ("2026-12-01T10:02:03+01:00", "voice", SUPPORT_LINE, 1, "opened"),
        *[
            ("2026-12-01T10:12:03+01:00", channel, to, 1, "escalated")
            for channel, to in zip(channels, third_line, strict=True)
        ],
        ("2026-12-01T10:30:00+01:00", "email", SUPPORT_MAIL, 1, "resolved"),
        ("2026-12-01T10:30:00+01:00", "sms", ONCALL, 1, "resolved"),
        ("2026-12-01T10:32:03+01:00", "email", SUPPORT_MAIL, 2, "report"),
        ("2026-12-01T10:32:03+01:00", "sms", ONCALL, 2, "opened"),
        ("2026-12-01T10:32:03+01:00", "voice", ONCALL, 2, "opened"),
        ("2026-12-01T10:32:03+01:00", "voice", SUPPORT_LINE, 2, "opened"),
        *[
            ("2026-12-01T10:42:03+01:00", channel, to, 2, "escalated")
            for channel, to in zip(channels, third_line, strict=True)
        ],
        ("2026-12-01T12:02:00+01:00", "email", SUPPORT_MAIL, 2, "resolved"),
        ("2026-12-01T12:02:00+01:00", "sms", ONCALL, 2, "resolved"),
    ]


# --- the spec's rules, checked on every shipped scenario --------------------------------------

ALL = sorted(path.stem for path in SCENARIOS.glob("*.yaml"))
POLICY = policy_from_config(Config().sla)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _local(at: datetime | None) -> str | None:
    if at is None:
        return None
    local = POLICY.calendar.local(at)
    return local.isoformat(timespec="microseconds" if local.microsecond else "seconds")


def raised_parts(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every alert the sent messages carry, as raised: a combined message gives one per part
    (its `parts`), a held one its `held_since` as the instant it was raised."""
    found = []
    for a in alerts:
        parts = a.get("parts") or [
            {"incident": a["incident"], "kind": a["kind"], "at": a.get("held_since", a["at"])}
        ]
        found += [a | part for part in parts]
    return found


@pytest.mark.parametrize("name", ALL)
def test_every_shipped_scenario_keeps_the_spec_rules(name: str) -> None:
    document = output(name)
    sent = document["alerts"]
    # paging: one SMS and at most one call per person and instant; held messages go out at
    # an opening of support hours, and nothing about a P3/P4 reaches a phone outside them
    messages = [(a["at"], a["channel"], a["to"]) for a in sent if a["channel"] != "email"]
    assert len(messages) == len(set(messages))
    priorities = {i["number"]: i["priority"] for i in document["incidents"]}
    for a in sent:
        if "held_since" in a:
            assert POLICY.calendar.is_support_time(_at(a["at"])), a
            assert a["held_since"] < a["at"]
        if a["channel"] == "sms" and priorities.get(a["incident"], 1) >= 3:
            assert POLICY.calendar.is_support_time(_at(a["at"])), a
        if "parts" in a:
            assert a["also"] == [part["kind"] for part in a["parts"][1:]]
            assert (a["incident"], a["kind"]) == (a["parts"][0]["incident"], a["parts"][0]["kind"])
    sent = raised_parts(sent)
    for item in document["incidents"]:
        number, timeline = item["number"], item["timeline"]
        mine = [a for a in sent if a["incident"] == number]
        # the e-mail report goes out when the incident opens, once
        reports = [a for a in mine if a["kind"] == "report"]
        assert [(a["at"], a["channel"], a["to"]) for a in reports] == [
            (item["opened_at"], "email", SUPPORT_MAIL)
        ]
        # deadlines: `sla deadlines` for the last priority from the opening or the last raise
        raises = [e["at"] for e in timeline if e["kind"] == "raised"]
        counted_from = raises[-1] if raises else item["opened_at"]
        due = compute_deadlines(POLICY, Priority(item["priority"]), _at(counted_from))
        assert item["response_due"] == _local(due.response_due)
        assert item["repair_due"] == _local(due.repair_due)
        people = [e for e in timeline if e["kind"] in ("acknowledged", "updated")]
        if not people:
            assert item["update_due"] == _local(due.update_due)
        if item["priority"] >= 3:
            assert item["update_due"] is None and item["repair_due"] is None
        # breaches only for targets missed while the incident was open
        for target in item["breaches"]:
            assert item[f"{target}_due"] is not None
            assert item["resolved_at"] is None or item[f"{target}_due"] < item["resolved_at"]
        # nothing alerts for a resolved incident but its own resolution
        if item["resolved_at"] is not None:
            after = [a for a in mine if a["at"] >= item["resolved_at"]]
            assert {a["kind"] for a in after} <= {"resolved"}
        # SMS to every on-call number for every alert but the report (escalation pages and
        # contingency included); voice to them too while the incident is P1, but never a call
        # for the resolved message
        oncall = {a["to"] for a in mine if a["kind"] == "opened" and a["channel"] == "sms"}
        assert oncall
        for at, kind in {(a["at"], a["kind"]) for a in mine}:
            if kind == "report":
                continue
            to = {(a["channel"], a["to"]) for a in mine if a["at"] == at and a["kind"] == kind}
            assert {("sms", number) for number in oncall} <= to, (at, kind)
            p1 = item["priority"] == 1 and (not raises or at >= raises[-1])
            if kind == "resolved":
                assert {channel for channel, _ in to} <= {"email", "sms"}, (at, kind)
            elif p1:
                assert {("voice", number) for number in oncall} <= to, (at, kind)


# --- determinism --------------------------------------------------------------------------------


# Run twice, with string hashing salted differently (PYTHONHASHSEED 1 here, 2 in `_run`):
# the same bytes on stdout.
def test_the_same_scenario_gives_the_same_output_whatever_the_hash_seed() -> None:
    first = simulate(SCENARIOS / "priority-raised.yaml", env={"PYTHONHASHSEED": "1"})
    second = _run("priority-raised")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout


# --- the configuration's topology -------------------------------------------------------------


# No `customers` in the scenario: config/ctiwatch.yaml's topology (acme, globex, initech) is
# used, with its probe settings and on-call list. globex-utr's four users lose click2dial from
# Tue 10:00: the third failed round is 10:00 + 2 intervals, known after its retries' backoffs
# (b, then 2b): with the file's 10 s interval and 500 ms backoff, 10:00:21.5. P1, inside
# support hours: due 4 support hours later, and the support line is called at the opening.
def test_scenario_without_customers_uses_the_topology_of_the_config(tmp_path: Path) -> None:
    scenario = tmp_path / "config-topology.yaml"
    scenario.write_text(
        'start: "2026-12-01T09:30:00+01:00"\n'
        'duration: "1h"\n'
        "faults:\n"
        "  - {service: click2dial, customer: globex, location: globex-utr, kind: outage,\n"
        '     from: "2026-12-01T10:00:00+01:00", to: "2026-12-01T12:00:00+01:00"}\n'
    )
    result = simulate(scenario, "--config", "config/ctiwatch.yaml")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    config = load_config(REPO / "config" / "ctiwatch.yaml")
    probes = config.probes
    assert probes.retries == 2
    known = _at("2026-12-01T10:00:00+01:00") + 2 * probes.interval + 3 * probes.retry_backoff
    assert known == _at("2026-12-01T10:00:21.5+01:00")
    (only,) = document["incidents"]
    due = compute_deadlines(POLICY, Priority.CRITICAL, known)
    assert (only["customer"], only["priority"], only["opened_at"], only["response_due"]) == (
        "globex",
        1,
        "2026-12-01T10:00:21.500000+01:00",
        "2026-12-01T14:00:21.500000+01:00",
    )
    assert due.response_due == _at(only["response_due"])
    configured = config.alerting.oncall
    opening = [a for a in document["alerts"] if a["at"] == only["opened_at"]]
    assert [(a["channel"], a["to"]) for a in opening] == [
        ("email", SUPPORT_MAIL),
        *[("sms", number) for number in configured],
        *[("voice", number) for number in configured],
        ("voice", SUPPORT_LINE),
    ]


# --- invalid scenarios --------------------------------------------------------------------------

VALID = {
    "start": "2026-12-01T09:00:00+01:00",
    "duration": "1h",
    "customers": [{"id": "acme", "locations": [{"id": "acme-ams", "users": ["alice"]}]}],
}
FAULT = {
    "service": "crm",
    "kind": "outage",
    "from": "2026-12-01T10:00:00+01:00",
    "to": "2026-12-01T11:00:00+01:00",
}


def invalid(data: dict[str, Any], tmp_path: Path) -> list[str]:
    path = tmp_path / "scenario.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    result = simulate(path)
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()


def test_invalid_scenario_exits_2_naming_every_bad_field(tmp_path: Path) -> None:
    data = {k: v for k, v in VALID.items() if k != "start"} | {
        "colour": "red",
        "duration": "3x",
        "faults": [
            FAULT | {"kind": "unrecognized"},
            FAULT | {"to": "2026-12-01T11:00:00"},
        ],
    }
    assert invalid(data, tmp_path) == [
        "error: start: is required",
        "error: duration: must be a duration such as '60s', '5m', '4h' or '2d', not '3x'",
        "error: faults[0].rate: is required for kind 'unrecognized'",
        "error: faults[1].to: needs a UTC offset, e.g. 2026-12-01T09:00:00+01:00",
        "error: colour: unknown key (check the spelling)",
    ]


def test_scenario_start_without_offset_exits_2(tmp_path: Path) -> None:
    assert invalid(VALID | {"start": "2026-12-01T09:00:00"}, tmp_path) == [
        "error: start: needs a UTC offset, e.g. 2026-12-01T09:00:00+01:00"
    ]


def test_faults_naming_unknown_customers_locations_or_users_exit_2(tmp_path: Path) -> None:
    data = VALID | {
        "faults": [
            FAULT | {"customer": "initech"},
            FAULT | {"customer": "acme", "location": "acme-rtm"},
            FAULT | {"users": ["zoe"]},
        ]
    }
    assert invalid(data, tmp_path) == [
        "error: faults[0].customer: unknown customer 'initech'",
        "error: faults[1].location: 'acme-rtm' is not a location of customer 'acme'",
        "error: faults[2].users: unknown user 'zoe' at the chosen location(s)",
    ]


def test_agents_and_fault_sources_that_name_nothing_exit_2(tmp_path: Path) -> None:
    data = VALID | {
        "agents": [
            {"id": "ams-agent-1", "locations": ["acme-ams"]},
            {"id": "ams-agent-1", "locations": ["acme-xyz"]},
        ],
        "faults": [FAULT | {"sources": ["central", "rtm-agent-9"]}],
    }
    assert invalid(data, tmp_path) == [
        "error: agents[1].id: duplicate agent id 'ams-agent-1'",
        "error: agents[1].locations: unknown location 'acme-xyz'",
        "error: faults[0].sources: unknown source 'rtm-agent-9' (known: ams-agent-1, central)",
    ]


def test_a_scenario_window_inside_support_hours_is_invalid_unless_an_emergency(
    tmp_path: Path,
) -> None:
    # Tue 1 Dec 2026 16:00-18:00 starts inside support hours; an emergency says why it may.
    window = {"from": "2026-12-01T16:00:00+01:00", "to": "2026-12-01T18:00:00+01:00"}
    assert invalid(VALID | {"maintenance": [window]}, tmp_path) == [
        "error: maintenance[0].from: maintenance must lie outside support hours: the window "
        "starts inside them (Tue 01 Dec 16:00) (an emergency needs emergency: true and a "
        "justification)"
    ]
    assert invalid(VALID | {"maintenance": [window | {"emergency": True}]}, tmp_path) == [
        "error: maintenance[0]: an emergency window needs a justification"
    ]
    emergency = window | {"emergency": True, "justification": "security patch"}
    path = tmp_path / "emergency.yaml"
    path.write_text(json.dumps(VALID | {"maintenance": [emergency]}))
    assert simulate(path).returncode == 0
