"""``ctiwatch incidents ...`` and ``ctiwatch status`` as real processes, over HTTP, against the
real console service (``console_scene.example_scene`` at a fixed time, SQLite) on a free port."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from auth_helpers import make_accounts, token_for
from console_scene import FORGOTTEN, Scene, example_scene, real_console, sqlite_url

from ctiwatch.web.app import build_web_app

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    url: str
    scene: Scene
    loop: asyncio.AbstractEventLoop
    tokens: dict[str, str]  # name -> API token; $CTIWATCH_TOKEN is "tester"'s (maintainer)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """The API on 127.0.0.1:<free port>, its loop in a background thread; API tokens for
    alice, bob, carol (oncall) and tester (maintainer, the one in $CTIWATCH_TOKEN)."""
    loop = asyncio.new_event_loop()
    playing = real_console(sqlite_url(tmp_path))
    scene = loop.run_until_complete(playing.__aenter__())
    loop.run_until_complete(example_scene(scene))
    accounts = make_accounts(scene.store, scene.clock)
    tokens = {
        name: loop.run_until_complete(token_for(accounts, name, role))
        for name, role in (
            ("alice", "oncall"),
            ("bob", "oncall"),
            ("carol", "oncall"),
            ("tester", "maintainer"),
        )
    }
    monkeypatch.setenv("CTIWATCH_TOKEN", tokens["tester"])
    runner = web.AppRunner(build_web_app(scene.console, accounts=accounts, metrics_registry=None))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", scene, loop, tokens)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(playing.__aexit__(None, None, None))
        loop.close()


def ctiwatch(
    *args: str, user: str = "tester", token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "USER": user, "PYTHONIOENCODING": "utf-8"}
    if token is not None:
        env["CTIWATCH_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "ctiwatch", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- reading --------------------------------------------------------------------------------


def test_incidents_list_prints_a_table_newest_first_in_amsterdam_time(served: Served) -> None:
    done = ctiwatch("incidents", "list", "--url", served.url)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "#  PRIORITY     STATUS    CUSTOMER  OPENED                BREACHED  TITLE",
        "2  P1 Critical  open      acme      2026-12-01 09:30 CET  -         "
        "Click2Dial unavailable at acme-ams (all users)",
        "1  P2 High      resolved  globex    2026-11-29 10:00 CET  -         "
        "Click2Dial unavailable for bob at globex-utr",
    ]


def test_incidents_list_filters_and_prints_json(served: Served) -> None:
    done = ctiwatch(
        "incidents", "list", "--status", "active", "--customer", "acme", "--json", "--url",
        served.url,
    )  # fmt: skip
    assert done.returncode == 0
    found = json.loads(done.stdout)["incidents"]
    assert [(i["number"], i["status"], i["opened_at"]) for i in found] == [
        (2, "open", "2026-12-01T09:30:00+01:00")
    ]


def test_incidents_list_with_nothing_matching_says_so(served: Served) -> None:
    done = ctiwatch("incidents", "list", "--customer", "initech", "--url", served.url)
    assert (done.returncode, done.stdout) == (0, "no incidents\n")


def test_incidents_show_prints_deadlines_scope_and_timeline(served: Served) -> None:
    # Past the response deadline (13:30 local): the timers mark the breach.
    served.scene.clock.set(datetime(2026, 12, 1, 12, 31, tzinfo=UTC))
    asyncio.run_coroutine_threadsafe(served.scene.pipeline.tick(), served.loop).result(30)
    done = ctiwatch("incidents", "show", "2", "--url", served.url)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "incident 2: Click2Dial unavailable at acme-ams (all users)",
        "  customer:     ACME B.V. (acme)",
        "  priority:     P1 Critical",
        "  status:       open",
        "  opened:       2026-12-01 09:30 CET",
        "  acknowledged: -",
        "  resolved:     -",
        "  response due: 2026-12-01 13:30 CET (breached)",
        "  update due:   2026-12-01 13:30 CET (breached)",
        "  repair due:   to be determined",
        "  breaches:     response, update",
        "scope:",
        "  click2dial at acme-ams (all users), P1, seen by the central prober: 3 consecutive "
        "failed rounds for every user at "
        "acme-ams (2 users): HTTP 503 Service Unavailable",
        "timeline:",
        "  AT                    WHAT              WHO       DETAIL",
        "  2026-12-01 09:30 CET  opened            ctiwatch  P1 Critical: click2dial acme-ams "
        "location unavailable (P1): 3 consecutive failed rounds for every user at acme-ams "
        "(2 users): HTTP 503 Service Unavailable",
        "  2026-12-01 10:00 CET  escalated         ctiwatch  paged the third line",
        "  2026-12-01 12:30 CET  response_warning  ctiwatch  75% of the response time has passed; "
        "due 2026-12-01 13:30 CET",
        "  2026-12-01 12:30 CET  update_warning    ctiwatch  75% of the update time has passed; "
        "due 2026-12-01 13:30 CET",
        "  2026-12-01 13:30 CET  response_breach   ctiwatch  response was due 2026-12-01 13:30 CET",
        "  2026-12-01 13:30 CET  update_breach     ctiwatch  update was due 2026-12-01 13:30 CET",
    ]


def test_incidents_show_json_is_the_api_document(served: Served) -> None:
    done = ctiwatch("incidents", "show", "1", "--json", "--url", served.url)
    document = json.loads(done.stdout)
    assert (document["number"], document["status"], document["resolved_by"]) == (
        1,
        "resolved",
        "auto",
    )
    assert document["timeline"][-1]["detail"] == "every condition cleared (1 in scope)"


# --- acting ---------------------------------------------------------------------------------


def test_people_act_on_an_incident_and_the_timeline_says_whose_token_it_was(
    served: Served,
) -> None:
    url = ["--url", served.url]
    alice, bob = served.tokens["alice"], served.tokens["bob"]
    steps = [
        (
            ["ack", "2", "--token", alice],
            "incident 2: acknowledged by alice; now P1 acknowledged, "
            "update due 2026-12-01 14:00 CET",
        ),
        (
            ["update", "2", "--text", "Carrier is rerouting", "--token", alice],
            "incident 2: update posted by alice; now P1 acknowledged, "
            "update due 2026-12-01 14:00 CET",
        ),
        (
            ["priority", "2", "--to", "2", "--reason", "only Amsterdam", "--token", bob],
            "incident 2: priority P1 -> P2 by bob; now P2 acknowledged, "
            "update due 2026-12-02 09:30 CET, repair due 2026-12-03 17:00 CET",
        ),
        (
            ["resolve", "2", "--token", bob, "--force", "--reason", "carrier fixed the trunk"],
            "incident 2: resolved by bob; now P2 resolved",
        ),
        (
            ["reopen", "2"],  # --token defaults to $CTIWATCH_TOKEN
            "incident 2: reopened by tester; now P2 open, response due 2026-12-02 09:30 CET, "
            "update due 2026-12-02 09:30 CET, repair due 2026-12-03 17:00 CET",
        ),
    ]
    for argv, expected in steps:
        done = ctiwatch("incidents", *argv, *url)
        assert (done.returncode, done.stdout, done.stderr) == (0, expected + "\n", ""), argv

    shown = json.loads(ctiwatch("incidents", "show", "2", "--json", *url).stdout)
    assert [(e["kind"], e["actor"], e["detail"]) for e in shown["timeline"][2:]] == [
        ("acknowledged", "alice", "acknowledged by alice"),
        ("updated", "alice", "Carrier is rerouting"),
        ("priority_changed", "bob", "P1 → P2 by bob: only Amsterdam"),
        ("resolved", "bob", "resolved by bob: carrier fixed the trunk" + FORGOTTEN),
        ("reopened", "tester", "reopened by tester"),
    ]


def test_incidents_open_asks_a_question_as_a_p4(served: Served) -> None:
    done = ctiwatch(
        "incidents", "open", "--customer", "globex", "--priority", "4",
        "--question", "Why is the CRM slow?", "--url", served.url, token=served.tokens["carol"],
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        "incident 3: opened by carol as a P4 question for globex; now P4 open, "
        "response due 2026-12-02 10:00 CET\n"
    )
    shown = json.loads(ctiwatch("incidents", "show", "3", "--json", "--url", served.url).stdout)
    assert (shown["priority"], shown["title"], shown["timeline"][0]["actor"]) == (
        4,
        "Why is the CRM slow?",
        "carol",
    )


def test_incidents_open_refuses_other_priorities_without_asking_the_service() -> None:
    done = ctiwatch(
        "incidents", "open", "--customer", "globex", "--priority", "2", "--question", "x",
        "--url", f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "argument --priority: a person opens P4 incidents (questions), not P2" in done.stderr


# --- errors ---------------------------------------------------------------------------------


def test_unreachable_service_exits_1_with_one_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = ctiwatch("incidents", "list", "--url", url)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"error: cannot reach the ctiwatch service at {url} (connection refused); "
        "is `ctiwatch run` running there?\n"
    )


def test_default_url_comes_from_the_web_section_of_the_config(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "ctiwatch.yaml"
    config.write_text(f"web:\n  host: 0.0.0.0\n  port: {port}\n", encoding="utf-8")
    done = ctiwatch("status", "--config", str(config))
    assert done.returncode == 1
    assert f"at http://127.0.0.1:{port} (connection refused)" in done.stderr


def test_unknown_incident_exits_1_with_the_api_message(served: Served) -> None:
    done = ctiwatch("incidents", "ack", "99", "--url", served.url)
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "error: incident 99 does not exist\n",
    )


def test_action_not_possible_now_exits_1(served: Served) -> None:
    done = ctiwatch("incidents", "resolve", "1", "--url", served.url)
    assert (done.returncode, done.stderr) == (
        1,
        "error: cannot resolve incident 1: it is resolved\n",
    )


def test_resolve_while_conditions_hold_without_force_exits_1_naming_what_holds(
    served: Served,
) -> None:
    done = ctiwatch("incidents", "resolve", "2", "--url", served.url)
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "error: conditions in the scope of incident 2 still hold: Click2Dial at acme-ams, "
        "all users: 3 consecutive failed rounds for every user at acme-ams (2 users): HTTP 503 "
        "Service Unavailable. Resolving it anyway needs force and a reason; if they persist, "
        "a new incident opens (--force)\n",
    )


def test_forced_resolve_without_reason_exits_2_naming_the_option(served: Served) -> None:
    done = ctiwatch("incidents", "resolve", "2", "--force", "--url", served.url)
    assert (done.returncode, done.stderr) == (2, "error: reason must not be empty (--reason)\n")


def test_bad_input_refused_by_the_api_exits_2_naming_the_option(served: Served) -> None:
    done = ctiwatch(
        "incidents", "open", "--customer", "nobody", "--question", "x", "--url", served.url
    )
    assert (done.returncode, done.stderr) == (2, "error: unknown customer 'nobody' (--customer)\n")


def test_bad_url_exits_2_naming_the_option() -> None:
    done = ctiwatch("status", "--url", "localhost:8080")
    assert done.returncode == 2
    assert done.stderr.endswith(
        "error: argument --url: not a URL such as http://127.0.0.1:8080: 'localhost:8080'\n"
    )
    assert done.stderr.count("\n") == 1


# --- status ---------------------------------------------------------------------------------


def test_status_shows_every_service_incidents_and_agents(served: Served) -> None:
    done = ctiwatch("status", "--url", served.url)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "ctiwatch status at 2026-12-01 10:00 CET: Partial outage (1 down · 1 open incident)",
        "",
        "CUSTOMER  LOCATION    SERVICE          STATE  LAST PROBE  "
        "RECOGNISED (ANSWERED, 1H)     P95  INCIDENT  DETAIL",
        "acme      acme-ams    Click2Dial       down   42s ago     "
        "-                               -  2 (P1)    all users: 3 consecutive failed rounds for "
        "every user at acme-ams (2 users): HTTP 503 Service Unavailable",
        "acme      acme-ams    CRM integration  ok     10m ago     "
        "99.1% (112 calls)          195 ms  -",
        "globex    globex-utr  Click2Dial       ok     42s ago     "
        "-                          195 ms  -",
        "globex    globex-utr  CRM integration  ok     10m ago     "
        "-                          195 ms  -",
        "",
        "open incidents (1):",
        "  #  PRIORITY     STATUS  CUSTOMER  OPENED                BREACHED  TITLE",
        "  2  P1 Critical  open    acme      2026-12-01 09:30 CET  -         "
        "Click2Dial unavailable at acme-ams (all users)",
        "",
        "mqtt broker 127.0.0.1:1883: connected",
        "agents (2):",
        "  NAME         STATUS  LOCATIONS   RESULTS  LAST SEEN  REASON",
        "  agent-ams-1  online  acme-ams       1284  8s ago     -",
        "  agent-utr-1  stale   globex-utr       96  4m ago     no report for 4m",
        "",
        "maintenance: none",
    ]


def test_status_json_is_the_api_document(served: Served) -> None:
    done = ctiwatch("status", "--json", "--url", served.url)
    document = json.loads(done.stdout)
    assert document["overall"] == {
        "state": "down",
        "headline": "Partial outage",
        "detail": "1 down · 1 open incident",
    }
    assert document["generated_at"] == "2026-12-01T10:00:00+01:00"


def test_without_a_token_the_cli_says_how_to_give_one(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CTIWATCH_TOKEN")
    done = ctiwatch("incidents", "ack", "2", "--url", served.url)
    assert done.returncode == 1
    assert done.stderr == (
        "error: log in or send an API token (Bearer); give an API token with --token or "
        "$CTIWATCH_TOKEN\n"
    )
    revoked = ctiwatch("incidents", "list", "--url", served.url, "--token", "ctw_made-up")
    assert revoked.returncode == 1
    assert "the API token is not valid (unknown or revoked)" in revoked.stderr
