"""Turning view models into HTML (Jinja2) and JSON, with every time in local time."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from classifier.observation import CENTRAL
from ctiwatch.kpi import hours_text, share_text
from ctiwatch.timefmt import iso_local
from ctiwatch.web.service import (
    SERVICE_STATES,
    CustomerStatus,
    IncidentDetail,
    RecognitionRow,
    ServiceState,
    StatusView,
    UserTile,
)
from sla.priority import Priority
from sla.words import SERVICE_NAMES, percent, service_name, unset_target

TEMPLATES = Path(__file__).parent / "templates"

PRIORITY_LABELS = {int(p): p.label for p in Priority}
STATE_LABELS = {
    "ok": "Operational",
    "degraded": "Degraded",
    "down": "Down",
    "maintenance": "Maintenance",
    "unknown": "No data",
}


@dataclass(frozen=True, slots=True)
class Overall:
    """The status page's banner."""

    state: ServiceState
    headline: str
    detail: str


def overall(status: StatusView) -> Overall:
    """The banner in Statuspage's words, worst first.

    A *tile* is one service at one location of one customer. **Major outage** only when every
    tile is down, or every tile of one customer (that customer has nothing left); **partial
    outage** when some tile is down or a P1 is open; **degraded performance** when some tile is
    degraded or a P2 is open; then maintenance; **all systems operational** otherwise (P3 and P4
    incidents do not touch the service).
    """
    states = [t.state for c in status.customers for loc in c.locations for t in loc.services]
    counts = {state: states.count(state) for state in SERVICE_STATES}
    priorities = [i.priority for i in status.open_incidents]
    parts = [f"{counts[s]} {STATE_LABELS[s].lower()}" for s in ("down", "degraded", "maintenance")]
    facts = [part for part in parts if not part.startswith("0 ")]
    if priorities:
        n = len(priorities)
        facts.append(f"{n} open incident{'s' if n != 1 else ''}")
    detail = " · ".join(facts) if facts else f"{len(states)} services checked"
    if any(_all_down(c) for c in status.customers):
        return Overall("down", "Major outage", detail)
    if counts["down"] or 1 in priorities:
        return Overall("down", "Partial outage", detail)
    if counts["degraded"] or 2 in priorities:
        return Overall("degraded", "Degraded performance", detail)
    if counts["maintenance"]:
        return Overall("maintenance", "Maintenance in progress", detail)
    if states and counts["unknown"] == len(states):
        return Overall("unknown", "Waiting for the first probes", detail)
    if not states:
        return Overall("unknown", "Nothing is monitored yet", "the topology has no customers")
    return Overall("ok", "All systems operational", detail)


def seen_down(sources: Sequence[str]) -> str:
    """Which source sees a tile down (``ServiceTile.seen_down_by``), when it is not (only)
    the central prober: ``seen down by ams-agent-1, not by the central prober``; else ""."""
    agents = [source for source in sources if source != CENTRAL]
    if not agents:
        return ""
    central = CENTRAL in sources
    return f"seen down by {', '.join(agents)}" + (
        " and the central prober" if central else ", not by the central prober"
    )


def _all_down(customer: CustomerStatus) -> bool:
    """Every service at every location of ``customer`` is down (if every customer's are,
    everything is)."""
    states = [t.state for loc in customer.locations for t in loc.services]
    return bool(states) and all(state == "down" for state in states)


_SEVERITY: dict[str, int] = {"ok": 0, "unknown": 1, "maintenance": 2, "degraded": 3, "down": 4}


def worst_state(customer: CustomerStatus) -> str:
    states = [t.state for loc in customer.locations for t in loc.services]
    return max(states, key=lambda s: _SEVERITY[s], default="unknown")


# --- Rows rendered once ---------------------------------------------------------------------


R = TypeVar("R", bound=Hashable)


class RowMemo(Generic[R]):
    """What one small frozen row (a wall tile, a recognition row) renders to, by its value.

    A view of 10,000 targets carries 10,000 user tiles and 5,000 recognition rows, and a new
    view (every few seconds) changes few of them: each distinct row is rendered once, and a
    page or document joins the texts kept for its rows, :data:`CHUNK` rows a piece (a
    rendering hands the event loop back between pieces). Bounded: after a join of fewer than
    half the kept rows, only that join's rows are kept."""

    CHUNK = 100

    def __init__(self, render: Callable[[R], str], separator: str = "") -> None:
        self._render = render
        self._separator = separator
        self._texts: dict[R, str] = {}

    def pieces(self, rows: Sequence[R]) -> Iterator[str]:
        texts, render, separator = self._texts, self._render, self._separator
        for start in range(0, len(rows), self.CHUNK):
            part = []
            for row in rows[start : start + self.CHUNK]:
                text = texts.get(row)
                if text is None:
                    text = texts[row] = render(row)
                part.append(text)
            yield (separator if start else "") + separator.join(part)
        if len(texts) > 2 * len(rows) + 64:
            self._texts = {row: texts[row] for row in rows}

    def html(self, rows: Sequence[R]) -> Iterator[Markup]:
        """The rows' HTML, a piece at a time (``{% for part in ... %}{{ part }}``)."""
        return (Markup(piece) for piece in self.pieces(rows))


def state_counts(users: Iterable[UserTile]) -> dict[str, int]:
    """How many user tiles are in each state (the wall screen's bar)."""
    return dict(Counter(u.state for u in users))


# --- Jinja ----------------------------------------------------------------------------------


def build_environment(tz: ZoneInfo) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def local(value: datetime | None, fmt: str = "%a %d %b %Y %H:%M") -> str:
        if value is None:
            return "—"
        return value.astimezone(tz).strftime(fmt)

    def iso(value: datetime | None) -> str:
        return "" if value is None else iso_local(value, tz)

    env.filters["local"] = local
    env.filters["iso"] = iso
    env.filters["ago"] = ago
    env.filters["pct"] = pct
    env.filters["ms"] = ms
    env.filters["thousands"] = thousands
    env.filters["duration"] = duration
    env.filters["service_name"] = service_name
    env.filters["kpi_share"] = share_text
    env.filters["kpi_hours"] = hours_text
    env.globals["worst_state"] = worst_state
    env.globals["deadline_rows"] = deadline_rows
    env.globals["seen_down"] = seen_down
    env.globals["state_counts"] = state_counts
    # The wall's tiles and the overview's recognition rows, each rendered once per value (by
    # a template loaded once: get_template would look at the file again for every row).
    tile_template: list[jinja2.Template] = []
    row_template: list[jinja2.Template] = []

    def tile_html(u: UserTile) -> str:
        if not tile_template:
            tile_template.append(env.get_template("wall_tile.html"))
        return tile_template[0].render(u=u) + "\n"

    def row_html(r: RecognitionRow) -> str:
        if not row_template:
            row_template.append(env.get_template("recognition_row.html"))
        return row_template[0].render(r=r) + "\n"

    env.globals["user_tiles"] = RowMemo[UserTile](tile_html).html
    env.globals["recognition_rows"] = RowMemo[RecognitionRow](row_html).html
    env.globals.update(
        SERVICE_NAMES=SERVICE_NAMES,
        PRIORITY_LABELS=PRIORITY_LABELS,
        STATE_LABELS=STATE_LABELS,
        tz_name=tz.key,
    )
    return env


def ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    seconds = (now - value).total_seconds()
    if seconds < 0:
        return "in " + duration(-seconds)
    return duration(seconds) + " ago"


def duration(seconds: float | timedelta) -> str:
    total = int(seconds.total_seconds() if isinstance(seconds, timedelta) else seconds)
    if total < 60:
        return f"{total}s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def pct(rate: float | None) -> str:
    """Rounded down: a rate below a threshold never shows as the threshold (see sla.words)."""
    return percent(rate)


def thousands(count: int) -> str:
    """``25318`` as ``25,318``."""
    return f"{count:,}"


def ms(latency: float | None) -> str:
    if latency is None:
        return "—"
    if latency >= 10_000:
        return f"{latency / 1000:.1f} s"
    if latency >= 1000:
        return f"{latency / 1000:.2f} s"
    return f"{latency:.0f} ms"


@dataclass(frozen=True, slots=True)
class DeadlineRow:
    """One SLA target on the incident page: when it is due and how it stands."""

    target: str  # response | update | repair
    label: str
    due: datetime | None
    badge: str  # css class: breach | met | plain
    verdict: str


def deadline_rows(detail: IncidentDetail) -> list[DeadlineRow]:
    i = detail.summary
    resolved = i.status == "resolved"
    unset = unset_target(i.priority)
    rows = []
    if "response" in i.breaches:
        response = ("breach", "breached")
    elif i.acknowledged_at is not None:
        response = ("met", "responded")
    elif resolved:
        response = ("plain", "stopped")
    else:
        response = ("plain", "running" if detail.response_due else unset)
    rows.append(DeadlineRow("response", "Response due", detail.response_due, *response))
    for target, label, due in (
        ("update", "Next update due", detail.update_due),
        ("repair", "Repair due", detail.repair_due),
    ):
        if target in i.breaches:
            verdict = ("breach", "breached")
        elif due is None:
            verdict = ("plain", unset)
        elif resolved:
            verdict = ("met", "stopped") if target == "repair" else ("plain", "stopped")
        else:
            verdict = ("plain", "running")
        rows.append(DeadlineRow(target, label, due, *verdict))
    return rows


# --- JSON -----------------------------------------------------------------------------------


def jsonable(value: Any, tz: ZoneInfo) -> Any:
    """Dataclasses as objects, tuples as lists, times as ISO 8601 with the local offset."""
    if isinstance(value, datetime):
        return iso_local(value, tz)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name), tz) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [jsonable(item, tz) for item in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v, tz) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


def status_json(status: StatusView, tz: ZoneInfo) -> dict[str, Any]:
    banner = overall(status)
    body: dict[str, Any] = {"overall": jsonable(banner, tz)}
    body.update(jsonable(status, tz))
    return body


class StatusJson:
    """``json.dumps(status_json(status, tz))``, the same text, in pieces: the view's tiles a
    customer at a time, and its user tiles and recognition rows (nearly all of its size)
    serialised once per distinct row (:class:`RowMemo`)."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._users = RowMemo[UserTile](_row_json, ", ")
        self._recognition = RowMemo[RecognitionRow](_row_json, ", ")

    def __call__(self, status: StatusView) -> str:
        return "".join(self.pieces(status))

    def pieces(self, status: StatusView) -> Iterator[str]:
        rest = dataclasses.replace(status, customers=(), recognition=(), users=())
        body: dict[str, Any] = {"overall": jsonable(overall(status), self._tz)}
        body.update(jsonable(rest, self._tz))
        head = json.dumps(body)
        # The first "customers" key is the view's own (the banner before it has none; a
        # quote inside a string is escaped); recognition and users are its last fields.
        at = head.index('"customers": []') + len('"customers": [')
        tail = '"recognition": [], "users": []}'
        assert head.endswith(tail), "recognition and users are the view's last fields"
        yield head[:at]
        for n, customer in enumerate(status.customers):
            yield (", " if n else "") + json.dumps(jsonable(customer, self._tz))
        yield head[at : -len(tail)] + '"recognition": ['
        yield from self._recognition.pieces(status.recognition)
        yield '], "users": ['
        yield from self._users.pieces(status.users)
        yield "]}"


def _row_json(row: UserTile | RecognitionRow) -> str:
    """A row without times, enums or nesting: its fields as a JSON object."""
    return json.dumps({f.name: getattr(row, f.name) for f in dataclasses.fields(row)})


def incident_json(detail: IncidentDetail, tz: ZoneInfo) -> dict[str, Any]:
    """The summary's fields at the top level, like ``ctiwatch simulate`` reports incidents."""
    body: dict[str, Any] = jsonable(detail.summary, tz)
    body.update(
        response_due=jsonable(detail.response_due, tz),
        update_due=jsonable(detail.update_due, tz),
        repair_due=jsonable(detail.repair_due, tz),
        scope=jsonable(detail.scope, tz),
        timeline=jsonable(detail.timeline, tz),
    )
    return body
