"""``sla deadlines`` (a fixed contract, see simulate.md) and ``sla calendar``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from ctiwatch.config import load_config
from ctiwatch.settings import policy_from_config
from ctiwatch.timefmt import iso_local
from sla.deadlines import compute_deadlines
from sla.priority import Priority
from sla.targets import SlaPolicy

# Far enough for any incident, near enough that deadline arithmetic never leaves datetime's range.
_FIRST_YEAR = 1900
_LAST_YEAR = 9000


def register(sub: Any) -> None:
    sla = sub.add_parser("sla", help="SLA calendar and deadlines")
    commands = sla.add_subparsers(dest="sla_command", required=True, metavar="COMMAND")

    deadlines = commands.add_parser(
        "deadlines", help="response, update and repair due for a priority and report time (JSON)"
    )
    deadlines.add_argument("--priority", required=True, type=priority_argument, metavar="P")
    deadlines.add_argument("--reported", required=True, type=instant_argument, metavar="ISO8601")
    deadlines.add_argument("--config", metavar="FILE", help="take the sla section from FILE")
    deadlines.set_defaults(func=deadlines_command)

    calendar = commands.add_parser("calendar", help="working days, closed days and support hours")
    calendar.add_argument("--from", dest="first", required=True, type=date_argument)
    calendar.add_argument("--to", dest="last", required=True, type=date_argument)
    calendar.add_argument("--format", choices=("table", "json"), default="table")
    calendar.add_argument("--config", metavar="FILE", help="take the sla section from FILE")
    calendar.set_defaults(func=calendar_command)


# --- argument parsing (errors become one line naming the option) -------------------------


def priority_argument(text: str) -> Priority:
    try:
        return Priority(int(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"priority must be an integer from 1 to 4, not {text!r}"
        ) from None


def instant_argument(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time such as 2026-12-24T16:00:00+01:00: {text!r}"
        ) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"time needs a UTC offset (e.g. +01:00 or Z): {text!r}")
    if not _FIRST_YEAR <= at.year <= _LAST_YEAR:
        raise argparse.ArgumentTypeError(
            f"time must be in the years {_FIRST_YEAR} to {_LAST_YEAR}: {text!r}"
        )
    return at


def date_argument(text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date such as 2026-12-24: {text!r}") from None
    if not _FIRST_YEAR <= day.year <= _LAST_YEAR:
        raise argparse.ArgumentTypeError(
            f"date must be in the years {_FIRST_YEAR} to {_LAST_YEAR}: {text!r}"
        )
    return day


# --- commands -----------------------------------------------------------------------------


def load_policy(config_path: str | None) -> SlaPolicy:
    if config_path is None:
        return SlaPolicy.default()
    return policy_from_config(load_config(config_path).sla)


def deadlines_command(args: argparse.Namespace) -> int:
    policy = load_policy(args.config)
    reported: datetime = args.reported
    due = compute_deadlines(policy, args.priority, reported)
    zone = ZoneInfo(policy.calendar.timezone)
    document = {
        "priority": int(args.priority),
        "reported_at": iso_local(reported, zone),
        "response_due": iso_local(due.response_due, zone),
        "update_due": iso_local(due.update_due, zone),
        "repair_due": iso_local(due.repair_due, zone),
    }
    print(json.dumps(document))
    return 0


def calendar_command(args: argparse.Namespace) -> int:
    first: date = args.first
    last: date = args.last
    if last < first:
        print("ctiwatch sla calendar: error: --to is before --from", file=sys.stderr)
        return 2
    if (last - first).days > 3660:
        print("ctiwatch sla calendar: error: --from/--to span more than 10 years", file=sys.stderr)
        return 2
    policy = load_policy(args.config)
    calendar = policy.calendar
    closed = dict(calendar.closed_days_between(first, last))
    hours = f"{calendar.support_start:%H:%M}-{calendar.support_end:%H:%M}"
    days = []
    for offset in range((last - first).days + 1):
        day = date.fromordinal(first.toordinal() + offset)
        reason = closed.get(day)
        days.append(
            {
                "date": day.isoformat(),
                "weekday": f"{day:%a}",
                "working": reason is None,
                "reason": reason,
                "support_hours": hours if reason is None else None,
            }
        )
    if args.format == "json":
        print(json.dumps({"timezone": calendar.timezone, "days": days}, indent=2))
        return 0
    print(f"# support hours {hours} {calendar.timezone}, holidays {calendar.country}")
    for entry in days:
        status = "working" if entry["working"] else "closed"
        detail = entry["support_hours"] if entry["working"] else entry["reason"]
        print(f"{entry['date']}  {entry['weekday']}  {status:<7}  {detail}")
    return 0
