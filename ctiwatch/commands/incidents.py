"""``incidents list|show|ack|update|priority|resolve|reopen|open``: people's actions on the
running service, through its JSON API with an API token (``--token`` or ``$CTIWATCH_TOKEN``),
so each lands on the timeline and the audit log under the token's name.

Exit codes: 0 done; 1 the service cannot be reached, the incident does not exist or the action
is not possible now; 2 bad input (refused by argparse or by the API, naming the field).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from ctiwatch.apiclient import ApiClient, ApiError, ServiceUnreachable, base_url, url_for
from ctiwatch.config import load_config
from sla.priority import Priority
from sla.words import unset_target

T = TypeVar("T")

STATUS_FILTERS = ("open", "acknowledged", "active", "resolved")
# The API's field names -> the option a person types.
OPTIONS = {
    "token": "--token",
    "customer": "--customer",
    "text": "--text",
    "priority": "--to",
    "reason": "--reason",
    "status": "--status",
    "force": "--force",
}
_DASH = "-"


# --- arguments ----------------------------------------------------------------------------


def register(sub: Any) -> None:
    incidents = sub.add_parser(
        "incidents", help="list incidents and act on them in the running service"
    )
    commands = incidents.add_subparsers(dest="incidents_command", required=True, metavar="ACTION")
    service = service_options()
    # Who acts is the API token's name; a typed name is no longer taken.
    actor = argparse.ArgumentParser(add_help=False)

    listing = commands.add_parser("list", parents=[service], help="incidents, newest first")
    listing.add_argument("--status", choices=STATUS_FILTERS, help="active: open or acknowledged")
    listing.add_argument("--customer", metavar="ID")
    listing.add_argument("--limit", type=limit_argument, default=100, metavar="N")
    listing.set_defaults(func=list_command)

    show = commands.add_parser("show", parents=[service], help="one incident and its timeline")
    show.add_argument("number", type=number_argument, metavar="N")
    show.set_defaults(func=show_command)

    for name, help_text in (
        ("ack", "acknowledge: the first response (stops the response clock)"),
        ("reopen", "reopen a resolved incident"),
    ):
        action = commands.add_parser(name, parents=[service, actor], help=help_text)
        action.add_argument("number", type=number_argument, metavar="N")
        action.set_defaults(func=action_command, action=name)

    resolve = commands.add_parser(
        "resolve",
        parents=[service, actor],
        help="resolve the incident (while its conditions still hold: --force with a --reason)",
    )
    resolve.add_argument("number", type=number_argument, metavar="N")
    resolve.add_argument(
        "--force",
        action="store_true",
        help="resolve although conditions in its scope still hold; they are forgotten, and a "
        "new incident opens if the problem persists",
    )
    resolve.add_argument(
        "--reason", type=text_argument, metavar="TEXT", help="why; goes on the timeline"
    )
    resolve.set_defaults(func=action_command, action="resolve")

    update = commands.add_parser(
        "update", parents=[service, actor], help="post an update (restarts the update clock)"
    )
    update.add_argument("number", type=number_argument, metavar="N")
    update.add_argument("--text", required=True, type=text_argument)
    update.set_defaults(func=action_command, action="update")

    priority = commands.add_parser(
        "priority", parents=[service, actor], help="change the priority, with a reason"
    )
    priority.add_argument("number", type=number_argument, metavar="N")
    priority.add_argument("--to", dest="priority", required=True, type=priority_argument)
    priority.add_argument("--reason", required=True, type=text_argument)
    priority.set_defaults(func=action_command, action="priority")

    question = commands.add_parser(
        "open", parents=[service, actor], help="open a P4 incident with a customer's question"
    )
    question.add_argument("--customer", required=True, metavar="ID")
    question.add_argument(
        "--priority",
        type=question_priority_argument,
        default=4,
        help="4 (the default): people open questions; P1-P3 come from what ctiwatch observes",
    )
    question.add_argument("--question", required=True, type=text_argument, metavar="TEXT")
    question.set_defaults(func=open_command)


def service_options() -> argparse.ArgumentParser:
    """``--url``, ``--config`` and ``--json``, shared by every command that asks the service."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--url",
        type=url_argument,
        help="the running service (default: http://<web.host>:<web.port> of the config)",
    )
    options.add_argument("--config", metavar="FILE", help="configuration file")
    options.add_argument("--json", action="store_true", help="print the API's JSON")
    options.add_argument(
        "--token",
        metavar="TOKEN",
        help="API token (`ctiwatch tokens create`); default: $CTIWATCH_TOKEN",
    )
    return options


def url_argument(text: str) -> str:
    try:
        return base_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def number_argument(text: str) -> int:
    try:
        number = int(text.strip())
    except ValueError:
        number = 0
    if not 1 <= number <= 999_999_999:
        raise argparse.ArgumentTypeError(f"not an incident number: {text!r}")
    return number


def limit_argument(text: str) -> int:
    try:
        limit = int(text.strip())
    except ValueError:
        limit = 0
    if not 1 <= limit <= 500:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 500, not {text!r}")
    return limit


def priority_argument(text: str) -> int:
    try:
        return int(Priority(int(text.strip().upper().removeprefix("P"))))
    except ValueError:
        raise argparse.ArgumentTypeError(f"priority must be 1, 2, 3 or 4, not {text!r}") from None


def question_priority_argument(text: str) -> int:
    priority = priority_argument(text)
    if priority != Priority.LOW:
        raise argparse.ArgumentTypeError(
            f"a person opens P4 incidents (questions), not P{priority}; open it as P4 and "
            "change its priority with `ctiwatch incidents priority`"
        )
    return priority


def text_argument(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


# --- running against the service ----------------------------------------------------------


class Target:
    """Where the service is and how to show its times, from ``--url`` / ``--config``."""

    def __init__(self, args: argparse.Namespace) -> None:
        config = load_config(args.config)  # ConfigError: exit 2 with its lines
        self.url: str = args.url or url_for(config.web.host, config.web.port)
        self.tz = ZoneInfo(config.sla.timezone)
        self.token: str | None = (
            getattr(args, "token", None) or os.environ.get("CTIWATCH_TOKEN", "").strip() or None
        )


def call_service(
    url: str,
    work: Callable[[ApiClient], Awaitable[T]],
    options: Mapping[str, str] | None = None,
    *,
    token: str | None = None,
) -> T | int:
    """Run ``work`` against the service; an exit code (after one line on stderr) if it fails.
    ``options``: the API's field names -> the command's options, to name the one at fault.
    ``token``: the API token (``--token`` / ``$CTIWATCH_TOKEN``, see :class:`Target`)."""

    async def run() -> T:
        async with ApiClient.connect(url, token=token) as api:
            return await work(api)

    try:
        return asyncio.run(run())
    except ServiceUnreachable as exc:
        print(f"error: {exc}; is `ctiwatch run` running there?", file=sys.stderr)
        return 1
    except ApiError as exc:
        message = describe_api_error(exc, options)
        if exc.status == 401:
            message += "; give an API token with --token or $CTIWATCH_TOKEN"
        print(f"error: {message}", file=sys.stderr)
        return 2 if exc.status in (400, 415, 422) else 1


def describe_api_error(exc: ApiError, options: Mapping[str, str] | None = None) -> str:
    option = (OPTIONS if options is None else options).get(exc.field or "")
    if option is not None:
        return f"{exc.message} ({option})"
    if exc.field:
        return f"{exc.message} (field {exc.field})"
    return exc.message


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def show_answer(
    args: argparse.Namespace,
    work: Callable[[ApiClient], Awaitable[T]],
    render: Callable[[T, ZoneInfo], str],
    as_json: Callable[[T], Any] = lambda answer: answer,
) -> int:
    """Ask the service, then print what it answered: its JSON with ``--json``, else
    ``render``'s text in the configured time zone."""
    target = Target(args)
    answer = call_service(target.url, work, token=target.token)
    if isinstance(answer, int):
        return answer
    if args.json:
        print_json(as_json(answer))
    else:
        sys.stdout.write(render(answer, target.tz))
    return 0


def list_command(args: argparse.Namespace) -> int:
    return show_answer(
        args,
        lambda api: api.incidents(args.status, args.customer, args.limit),
        render_incident_list,
        lambda found: {"incidents": found},
    )


def show_command(args: argparse.Namespace) -> int:
    number: int = args.number
    return show_answer(args, lambda api: api.incident(number), render_incident)


def action_command(args: argparse.Namespace) -> int:
    target = Target(args)
    number: int = args.number
    action: str = args.action
    body: dict[str, Any] = {}
    if action == "update":
        body["text"] = args.text
    elif action == "priority":
        body["priority"] = args.priority
        body["reason"] = args.reason
    elif action == "resolve":
        if args.force:
            body["force"] = True
        if args.reason is not None:
            body["reason"] = args.reason

    async def work(api: ApiClient) -> tuple[dict[str, Any], dict[str, Any]]:
        before = await api.incident(number) if action == "priority" else {}
        return before, await api.act(number, action, body)

    answer = call_service(target.url, work, token=target.token)
    if isinstance(answer, int):
        return answer
    before, detail = answer
    if args.json:
        print_json(detail)
        return 0
    print(confirmation(action, number, last_actor(detail), before, detail, target.tz))
    return 0


def open_command(args: argparse.Namespace) -> int:
    target = Target(args)
    customer: str = args.customer
    question: str = args.question

    async def work(api: ApiClient) -> dict[str, Any]:
        number = await api.open_question(customer, question)
        return await api.incident(number)

    detail = call_service(target.url, work, token=target.token)
    if isinstance(detail, int):
        return detail
    if args.json:
        print_json(detail)
        return 0
    actor = last_actor(detail)
    line = f"incident {detail.get('number')}: opened by {actor} as a P4 question for {customer}"
    print(with_next_due(line, detail, target.tz))
    return 0


# --- rendering ----------------------------------------------------------------------------


def local_time(value: Any, tz: ZoneInfo) -> str:
    """An API time as ``2026-12-01 10:30 CET`` in ``tz``; ``-`` when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return _DASH
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return value
    if at.tzinfo is None:
        return value
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def priority_text(value: Any) -> str:
    try:
        priority = Priority(int(value))
    except (TypeError, ValueError):
        return f"P{value}"
    return f"P{int(priority)} {priority.label}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell, two spaces apart; ``right`` columns right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if index in right else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def breaches_text(incident: dict[str, Any]) -> str:
    breaches = incident.get("breaches") or []
    return ",".join(str(b) for b in breaches) if breaches else _DASH


def incident_rows(incidents: Sequence[dict[str, Any]], tz: ZoneInfo) -> list[list[str]]:
    return [
        [
            str(i.get("number")),
            priority_text(i.get("priority")),
            str(i.get("status")),
            str(i.get("customer")),
            local_time(i.get("opened_at"), tz),
            breaches_text(i),
            str(i.get("title") or ""),
        ]
        for i in incidents
    ]


INCIDENT_HEADER = ("#", "PRIORITY", "STATUS", "CUSTOMER", "OPENED", "BREACHED", "TITLE")


def render_incident_list(incidents: Sequence[dict[str, Any]], tz: ZoneInfo) -> str:
    if not incidents:
        return "no incidents\n"
    return table(INCIDENT_HEADER, incident_rows(incidents, tz), right=(0,))


def _scope_line(entry: dict[str, Any]) -> str:
    who = entry.get("user") or "all users"
    line = f"{entry.get('service')} at {entry.get('location')} ({who}), P{entry.get('priority')}"
    if entry.get("seen_by"):  # an older service does not say
        line += f", {entry['seen_by']}"
    condition = entry.get("condition")
    return f"{line}: {condition}" if condition else line


def due_text(detail: dict[str, Any], name: str, tz: ZoneInfo) -> str:
    """A deadline and how it stands, as the console shows it."""
    due = detail.get(f"{name}_due")
    breached = name in (detail.get("breaches") or [])
    resolved = detail.get("status") == "resolved"
    if due is None:
        if breached:
            return "breached"
        priority = detail.get("priority")
        return unset_target(priority if isinstance(priority, int) else 0)
    when = local_time(due, tz)
    if breached:
        return f"{when} (breached)"
    if name == "response" and detail.get("acknowledged_at") is not None:
        return f"{when} (responded)"
    if resolved:
        return f"{when} (stopped)"
    return when


def render_incident(detail: dict[str, Any], tz: ZoneInfo) -> str:
    customer = detail.get("customer")
    name = detail.get("customer_name") or customer
    resolved = local_time(detail.get("resolved_at"), tz)
    if detail.get("resolved_by"):
        resolved += f" ({detail['resolved_by']})"
    fields = [
        ("customer", f"{name} ({customer})"),
        ("priority", priority_text(detail.get("priority"))),
        ("status", str(detail.get("status"))),
        ("opened", local_time(detail.get("opened_at"), tz)),
        ("acknowledged", local_time(detail.get("acknowledged_at"), tz)),
        ("resolved", resolved),
        ("response due", due_text(detail, "response", tz)),
        ("update due", due_text(detail, "update", tz)),
        ("repair due", due_text(detail, "repair", tz)),
        ("breaches", ", ".join(detail.get("breaches") or []) or "none"),
    ]
    lines = [f"incident {detail.get('number')}: {detail.get('title') or ''}".rstrip()]
    lines += [f"  {label + ':':<14}{value}" for label, value in fields]
    scope = detail.get("scope") or []
    lines.append("scope:" if scope else "scope: none")
    lines += [f"  {_scope_line(entry)}" for entry in scope]
    timeline = detail.get("timeline") or []
    lines.append("timeline:")
    rows = [
        [
            local_time(entry.get("at"), tz),
            str(entry.get("kind")),
            str(entry.get("actor") or "ctiwatch"),
            str(entry.get("detail") or ""),
        ]
        for entry in timeline
    ]
    if rows:
        lines += ["  " + line for line in table(("AT", "WHAT", "WHO", "DETAIL"), rows).splitlines()]
    else:
        lines.append("  (empty)")
    return "\n".join(lines) + "\n"


def with_next_due(line: str, detail: dict[str, Any], tz: ZoneInfo) -> str:
    """``line`` plus the incident's state and the deadlines still running."""
    status = detail.get("status")
    state = f"P{detail.get('priority')} {status}"
    if status == "resolved":
        return f"{line}; now {state}"
    running = []
    if detail.get("acknowledged_at") is None and detail.get("response_due"):
        running.append(f"response due {local_time(detail['response_due'], tz)}")
    if detail.get("update_due"):
        running.append(f"update due {local_time(detail['update_due'], tz)}")
    if detail.get("repair_due"):
        running.append(f"repair due {local_time(detail['repair_due'], tz)}")
    return f"{line}; now {state}" + (f", {', '.join(running)}" if running else "")


def last_actor(detail: dict[str, Any]) -> str:
    """Who the service recorded for the action just done: the newest timeline entry's."""
    for entry in reversed(detail.get("timeline") or []):
        if isinstance(entry, dict) and entry.get("actor"):
            return str(entry["actor"])
    return "you"


def confirmation(
    action: str,
    number: int,
    actor: str,
    before: dict[str, Any],
    detail: dict[str, Any],
    tz: ZoneInfo,
) -> str:
    if action == "priority":
        line = (
            f"incident {number}: priority P{before.get('priority')} -> "
            f"P{detail.get('priority')} by {actor}"
        )
    else:
        done = {
            "ack": "acknowledged",
            "update": "update posted",
            "resolve": "resolved",
            "reopen": "reopened",
        }[action]
        line = f"incident {number}: {done} by {actor}"
    return with_next_due(line, detail, tz)
