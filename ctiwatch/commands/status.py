"""``status``: the running service's live status (``GET /api/v1/status``) in a terminal.

Per customer, location and service: state (with the source that sees it down when that is not
only the central prober), last probe, the share of the calls answered in the
trailing hour that were recognised (on a service that is down: those answered before the
outage), latency, the open incident; then open incidents, the MQTT broker and the agents (their
locations, results received and why one is down) and maintenance windows.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ctiwatch.commands.incidents import (
    INCIDENT_HEADER,
    incident_rows,
    local_time,
    service_options,
    show_answer,
    table,
)
from ctiwatch.web.render import duration, ms, seen_down
from sla.words import percent, service_name

_DASH = "-"


def register(sub: Any) -> None:
    status = sub.add_parser(
        "status", parents=[service_options()], help="live status of the running service"
    )
    status.set_defaults(func=status_command)


def status_command(args: argparse.Namespace) -> int:
    return show_answer(args, lambda api: api.status(), render_status)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def ago(value: Any, now: datetime | None) -> str:
    at = _time(value)
    if at is None or now is None:
        return "never" if value is None else _DASH
    seconds = (now - at).total_seconds()
    return f"in {duration(-seconds)}" if seconds < 0 else f"{duration(seconds)} ago"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def recognition(tile: dict[str, Any]) -> str:
    """``99.1% (112 calls)``: recognised share of the calls answered in the last hour; on a
    service that is down the figure is from before the outage and says so."""
    rate = _number(tile.get("recognition_rate"))
    calls = tile.get("calls") or 0
    if rate is None:
        return f"- ({calls} calls)" if calls else _DASH
    before = ", before the outage" if tile.get("state") == "down" else ""
    return f"{percent(rate)} ({calls} calls{before})"


def mqtt_line(mqtt: dict[str, Any]) -> str:
    """``mqtt broker 127.0.0.1:1883: unreachable (connection refused)``."""
    state = str(mqtt.get("state") or _DASH)
    if state == "disabled":
        return "mqtt broker: disabled (no remote agents)"
    detail = mqtt.get("detail")
    return f"mqtt broker {mqtt.get('broker')}: {state}" + (f" ({detail})" if detail else "")


def agent_locations(agent: dict[str, Any]) -> str:
    """The locations an agent's results were about; an older service sends only ``location``."""
    locations = agent.get("locations")
    if isinstance(locations, list) and locations:
        return ",".join(str(x) for x in locations)
    return str(agent.get("location") or _DASH)


def _count(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else _DASH


def render_status(document: dict[str, Any], tz: ZoneInfo) -> str:
    now = _time(document.get("generated_at"))
    overall = document.get("overall") or {}
    headline = str(overall.get("headline") or overall.get("state") or "")
    detail = overall.get("detail")
    lines = [
        f"ctiwatch status at {local_time(document.get('generated_at'), tz)}: {headline}"
        + (f" ({detail})" if detail else "")
    ]

    tiles = []
    for customer in document.get("customers") or []:
        for location in customer.get("locations") or []:
            for tile in location.get("services") or []:
                number = tile.get("incident_number")
                incident = (
                    f"{number} (P{tile.get('incident_priority')})" if number is not None else _DASH
                )
                latency = _number(tile.get("latency_p95_ms"))
                service = str(tile.get("service"))
                state = str(tile.get("state"))
                by = seen_down([str(s) for s in tile.get("seen_down_by") or []])
                if by:  # an agent sees what the central prober may not
                    state += f" ({by})"
                tiles.append(
                    [
                        str(customer.get("id")),
                        str(location.get("id")),
                        service_name(service),
                        state,
                        ago(tile.get("last_probe_at"), now),
                        recognition(tile),
                        _DASH if latency is None else ms(latency),
                        incident,
                        str(tile.get("detail") or ""),
                    ]
                )
    lines.append("")
    if tiles:
        header = (
            "CUSTOMER",
            "LOCATION",
            "SERVICE",
            "STATE",
            "LAST PROBE",
            f"RECOGNISED (ANSWERED, {str(document.get('recognition_window') or '1h').upper()})",
            "P95",
            "INCIDENT",
            "DETAIL",
        )
        lines += table(header, tiles, right=(6,)).splitlines()
    else:
        lines.append("nothing is monitored yet (the topology has no customers)")

    incidents = document.get("open_incidents") or []
    lines.append("")
    if incidents:
        lines.append(f"open incidents ({len(incidents)}):")
        rows = incident_rows(incidents, tz)
        lines += ["  " + line for line in table(INCIDENT_HEADER, rows, right=(0,)).splitlines()]
    else:
        lines.append("open incidents: none")

    agents = document.get("agents") or []
    lines.append("")
    mqtt = document.get("mqtt")
    if isinstance(mqtt, dict):
        lines.append(mqtt_line(mqtt))
    if agents:
        lines.append(f"agents ({len(agents)}):")
        rows = [
            [
                str(agent.get("name")),
                str(agent.get("status")),
                agent_locations(agent),
                _count(agent.get("results_received")),
                ago(agent.get("last_seen"), now),
                str(agent.get("reason") or _DASH),
            ]
            for agent in agents
        ]
        agent_header = ("NAME", "STATUS", "LOCATIONS", "RESULTS", "LAST SEEN", "REASON")
        lines += ["  " + line for line in table(agent_header, rows, right=(3,)).splitlines()]
    else:
        lines.append("agents: none")

    windows = document.get("maintenance") or []
    lines.append("")
    if windows:
        lines.append(f"maintenance ({len(windows)}):")
        rows = [
            [
                str(window.get("id")),
                str(window.get("state")),
                local_time(window.get("start"), tz),
                local_time(window.get("end"), tz),
                ",".join(window.get("services") or []) or "all services",
                ",".join(window.get("customers") or []) or "all customers",
                str(window.get("reason") or ""),
            ]
            for window in windows
        ]
        window_header = ("#", "STATE", "START", "END", "SERVICES", "CUSTOMERS", "REASON")
        lines += ["  " + line for line in table(window_header, rows, right=(0,)).splitlines()]
    else:
        lines.append("maintenance: none")
    return "\n".join(lines) + "\n"
