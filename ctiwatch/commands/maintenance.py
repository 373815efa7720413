"""``maintenance list|add|change|cancel``: maintenance windows in the running service, through
its JSON API, judged there by the SLA's rules (outside support hours unless an emergency with a
justification, the minimum notice, recurrence), each change kept with who, when and why.

Times are local wall times of the configured time zone (``2026-12-05 22:00``) or ISO 8601 with
an offset. Exit codes: 0 done; 1 the service cannot be reached, the window does not exist or the
change is not possible now; 2 bad input (refused by argparse or by the API, naming the option).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ctiwatch.apiclient import ApiClient
from ctiwatch.commands.incidents import (
    Target,
    call_service,
    local_time,
    print_json,
    service_options,
    show_answer,
    table,
    text_argument,
)

# The API's field names -> the option a person types.
OPTIONS = {
    "token": "--token",
    "start": "--start",
    "end": "--end",
    "services": "--service",
    "customers": "--customer",
    "locations": "--location",
    "reason": "--reason",
    "recurrence": "--repeat",
    "emergency": "--emergency",
    "justification": "--justification",
    "why": "--why",
}


def register(sub: Any) -> None:
    maintenance = sub.add_parser(
        "maintenance", help="schedule, change, cancel and list maintenance windows"
    )
    commands = maintenance.add_subparsers(
        dest="maintenance_command", required=True, metavar="ACTION"
    )
    service = service_options()
    # Who acts is the API token's name (--token / $CTIWATCH_TOKEN), kept in the history.
    actor = argparse.ArgumentParser(add_help=False)
    window = argparse.ArgumentParser(add_help=False)
    window.add_argument("--start", required=True, metavar="TIME", help="e.g. '2026-12-05 22:00'")
    window.add_argument("--end", required=True, metavar="TIME")
    window.add_argument(
        "--service", dest="services", action="append", choices=("click2dial", "crm"),
        help="a covered service (repeat; none: every service)",
    )  # fmt: skip
    window.add_argument(
        "--customer", dest="customers", action="append", metavar="ID",
        help="a covered customer (repeat; none: every customer)",
    )  # fmt: skip
    window.add_argument(
        "--location", dest="locations", action="append", metavar="ID",
        help="a covered location (repeat; none: every location)",
    )  # fmt: skip
    window.add_argument("--reason", required=True, type=text_argument, metavar="TEXT")
    window.add_argument(
        "--repeat", dest="recurrence", metavar="RRULE",
        help="an RFC 5545 rule, e.g. 'FREQ=WEEKLY;BYDAY=SA;COUNT=4'",
    )  # fmt: skip
    window.add_argument(
        "--emergency", action="store_true",
        help="may touch support hours and come without the minimum notice; needs --justification",
    )  # fmt: skip
    window.add_argument("--justification", type=text_argument, metavar="TEXT")

    listing = commands.add_parser("list", parents=[service], help="every window, newest first")
    listing.set_defaults(func=list_command)

    add = commands.add_parser("add", parents=[service, actor, window], help="schedule a window")
    add.set_defaults(func=add_command)

    change = commands.add_parser(
        "change", parents=[service, actor, window], help="change a window (give it as it will be)"
    )
    change.add_argument("id", type=id_argument, metavar="ID")
    change.add_argument("--why", required=True, type=text_argument, metavar="TEXT")
    change.set_defaults(func=change_command)

    cancel = commands.add_parser("cancel", parents=[service, actor], help="cancel a window")
    cancel.add_argument("id", type=id_argument, metavar="ID")
    cancel.add_argument("--why", type=text_argument, metavar="TEXT")
    cancel.set_defaults(func=cancel_command)


def id_argument(text: str) -> int:
    try:
        number = int(text.strip())
    except ValueError:
        number = 0
    if not 1 <= number <= 999_999_999:
        raise argparse.ArgumentTypeError(f"not a maintenance window id: {text!r}")
    return number


def wall_time(text: str, option: str, tz: ZoneInfo) -> str:
    """``text`` (local wall time or ISO 8601 with an offset) as ISO 8601 with an offset."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SystemExit(
            f"ctiwatch maintenance: error: {option}: not a time such as '2026-12-05 22:00': "
            f"{text!r}"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.isoformat()


def window_body(args: argparse.Namespace, tz: ZoneInfo) -> dict[str, Any]:
    body: dict[str, Any] = {
        "start": wall_time(args.start, "--start", tz),
        "end": wall_time(args.end, "--end", tz),
        "services": args.services,
        "customers": args.customers,
        "locations": args.locations,
        "reason": args.reason,
        "emergency": bool(args.emergency),
        "justification": args.justification or "",
    }
    if args.recurrence:
        body["recurrence"] = args.recurrence
    return body


def _exit_2(message: str) -> int:
    print(f"ctiwatch maintenance: error: {message}", file=sys.stderr)
    return 2


def _run(args: argparse.Namespace, work: Any, verb: str) -> int:
    target = Target(args)
    answer = call_service(target.url, work, options=OPTIONS, token=target.token)
    if isinstance(answer, int):
        return answer
    if args.json:
        print_json(answer)
        return 0
    print(f"maintenance window {answer.get('id')}: {verb}")
    sys.stdout.write(render_window(answer, target.tz))
    return 0


def list_command(args: argparse.Namespace) -> int:
    return show_answer(
        args,
        lambda api: api.maintenance(),
        render_windows,
        lambda found: {"maintenance": found},
    )


def add_command(args: argparse.Namespace) -> int:
    body = window_body(args, Target(args).tz)
    return _run(args, lambda api: api.schedule_maintenance(body), "scheduled")


def change_command(args: argparse.Namespace) -> int:
    body = window_body(args, Target(args).tz) | {"why": args.why}
    window_id: int = args.id
    return _run(args, lambda api: api.change_maintenance(window_id, body), "changed")


def cancel_command(args: argparse.Namespace) -> int:
    window_id: int = args.id
    why: str = args.why or ""

    async def work(api: ApiClient) -> dict[str, Any]:
        return await api.cancel_maintenance(window_id, why)

    return _run(args, work, "cancelled")


# --- rendering ----------------------------------------------------------------------------


def _covers(window: dict[str, Any]) -> str:
    parts = [
        ", ".join(window.get("services") or []) or "all services",
        ", ".join(window.get("customers") or []) or "all customers",
    ]
    if window.get("locations"):
        parts.append(", ".join(window["locations"]))
    return "; ".join(parts)


def render_windows(windows: list[dict[str, Any]], tz: ZoneInfo) -> str:
    if not windows:
        return "no maintenance windows\n"
    rows = [
        [
            str(w.get("id")),
            str(w.get("state")) + (" (emergency)" if w.get("emergency") else ""),
            local_time(w.get("start"), tz),
            local_time(w.get("end"), tz),
            _covers(w),
            str(w.get("reason", "")),
        ]
        for w in windows
    ]
    return table(["ID", "STATE", "START", "END", "COVERS", "REASON"], rows, right=[0]) + "\n"


def render_window(window: dict[str, Any], tz: ZoneInfo) -> str:
    lines = [
        f"  state:   {window.get('state')}",
        f"  when:    {local_time(window.get('start'), tz)} - {local_time(window.get('end'), tz)}",
        f"  covers:  {_covers(window)}",
        f"  reason:  {window.get('reason', '')}",
    ]
    if window.get("recurrence"):
        count = len(window.get("occurrences") or [])
        lines.append(f"  repeats: {window['recurrence']} ({count} occurrences)")
    if window.get("emergency"):
        lines.append(f"  emergency, exempt from the rules: {window.get('justification', '')}")
    for step in window.get("history") or []:
        why = f": {step['reason']}" if step.get("reason") else ""
        lines.append(
            f"  r{step.get('revision')} {step.get('action')} by {step.get('actor')} "
            f"at {local_time(step.get('at'), tz)}{why}"
        )
    return "\n".join(lines) + "\n"
