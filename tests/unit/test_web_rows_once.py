"""The status view's 10,000 user tiles and 5,000 recognition rows at 10,000 targets: each
distinct row is rendered (HTML) and serialised (JSON) once, the documents are the same as a
plain rendering, and what is kept stays bounded."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.readmodel import LiveRollups
from ctiwatch.web.render import RowMemo, StatusJson, status_json
from ctiwatch.web.service import (
    CustomerStatus,
    IncidentSummary,
    LocationStatus,
    MaintenanceView,
    RecognitionRow,
    ServiceTile,
    StatusView,
    UserTile,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def users(n: int, state: str = "ok") -> tuple[UserTile, ...]:
    return tuple(
        UserTile("c1", 'Acme "B.V."', "ams", "Amsterdam", f"u{i}", "crm", state, i / n)  # type: ignore[arg-type]
        for i in range(n)
    )


def a_view(tiles: tuple[UserTile, ...]) -> StatusView:
    customers = tuple(
        CustomerStatus(
            f"c{n}",
            f"C{n}",
            (
                LocationStatus(
                    "ams",
                    "Amsterdam",
                    (ServiceTile("crm", "down", NOW, 0.5, 4, 120.0, 7, 1, "u1: misses"),),
                ),
            ),
        )
        for n in range(3)
    )
    return StatusView(
        NOW,
        customers,
        (),
        (IncidentSummary(7, "c1", "C1", "Acme down", "open", 1, NOW),),
        (MaintenanceView(1, NOW, NOW + timedelta(hours=1), None, (), "patch", "ann", "scheduled"),),
        recognition_window="1h",
        version=3,
        recognition=(
            RecognitionRow("customer", "c1", "Acme", 0.9, 10, 1),
            RecognitionRow("user", "c1", "u1", None, 0, 0),
        ),
        users=tiles,
    )


def test_the_status_document_in_pieces_is_the_plain_serialisation() -> None:
    document = StatusJson(AMSTERDAM)
    view = a_view(users(600))
    assert document(view) == json.dumps(status_json(view, AMSTERDAM))
    assert document(view) == json.dumps(status_json(view, AMSTERDAM))  # from the kept rows
    changed = a_view((*users(600)[:-1], replace(users(600)[-1], state="down")))
    assert document(changed) == json.dumps(status_json(changed, AMSTERDAM))
    empty = replace(view, customers=(), users=(), recognition=())
    assert document(empty) == json.dumps(status_json(empty, AMSTERDAM))


def test_each_distinct_row_is_rendered_once_and_what_is_kept_stays_bounded() -> None:
    rendered: list[UserTile] = []

    def render(tile: UserTile) -> str:
        rendered.append(tile)
        return f"<{tile.user}:{tile.state}>"

    memo = RowMemo[UserTile](render)
    first = "".join(memo.pieces(users(1000)))
    assert first == "".join(f"<u{i}:ok>" for i in range(1000)) and len(rendered) == 1000
    assert "".join(memo.pieces(users(1000))) == first and len(rendered) == 1000
    for state in ("down", "degraded", "unknown"):  # every row changes three times
        "".join(memo.pieces(users(1000, state)))
    assert len(rendered) == 4000
    assert len(memo._texts) <= 2 * 1000 + 64  # not every row ever seen


def crm(n: int, user: str, at: datetime, recognised: bool) -> ProbeResult:
    return ProbeResult(
        result_id=f"r-{n}",
        target=TargetKey(Service.CRM, "acme", "ams", user),
        at=at,
        ok=True,
        recognised=recognised,
        latency_ms=120.0,
        status=200,
        evidence="",
    )


def test_a_users_figures_follow_its_new_results_and_the_minutes_passing() -> None:
    live = LiveRollups(timedelta(hours=1))
    live.start()
    live.observe([crm(1, "u1", NOW - timedelta(minutes=59, seconds=30), True)])
    key = ("acme", "ams", "u1", "crm")

    def calls_misses(now: datetime) -> tuple[int, int]:
        figures, _ = live.user_in(key, live.span(now))
        return figures.counts.calls, figures.counts.misses

    assert calls_misses(NOW) == (1, 0)
    live.observe([crm(2, "u1", NOW, False)])  # a new result counts at once
    assert calls_misses(NOW) == (2, 1)
    assert calls_misses(NOW + timedelta(minutes=1)) == (1, 1)  # the first left the window
    assert live.user_in(("acme", "ams", "u2", "crm"), live.span(NOW))[1] is None


def test_a_hostile_name_in_a_kept_row_is_escaped_on_the_wall_and_in_the_overview() -> None:
    from ctiwatch.web.render import build_environment

    env = build_environment(AMSTERDAM)
    hostile = "<script>alert(1)</script>"
    tiles = (UserTile("c1", hostile, "ams", "A&B", hostile, "crm", "down", None),)
    rows = (RecognitionRow("user", "c1", hostile, 0.5, 2, 1),)
    for _ in range(2):  # rendered, then from the kept text
        wall = "".join(env.globals["user_tiles"](tiles))
        overview = "".join(env.globals["recognition_rows"](rows))
        assert "<script>" not in wall + overview
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in wall and "A&amp;B" in wall
        assert "&lt;script&gt;" in overview and 'data-level="user"' in overview
