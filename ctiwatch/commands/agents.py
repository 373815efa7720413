"""``ctiwatch agents list|retire|silence|activate``: what people decide about probe agents'
pages, stored with each agent in the database (sla.md "Paging"; ``alerting.internal``).

A retired agent (taken out of service) and a silenced one (until a time, e.g. while it is
moved) page no one when they go offline or come back. The running service reads the decision
from the database at the moment of the change, so it counts without a restart.

Exit codes: 0 done; 1 the database cannot be reached or no agent of that name was ever heard
of; 2 bad input (naming the option).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from alerting.internal import AgentPaging
from alerting.rotation import parse_instant
from ctiwatch.accounts import cli_actor
from ctiwatch.clock import RealClock
from ctiwatch.config import load_config
from ctiwatch.storage import AuditEntry, StorageError, Store
from ctiwatch.storage.maintenance import AGENT_PAGING_KEY


def register(sub: Any) -> None:
    agents = sub.add_parser("agents", help="probe agents: list them, retire or silence their pages")
    commands = agents.add_subparsers(dest="agents_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="configuration file (default: embedded defaults)"
    )
    # Who decides is the operating system's user (stored with the decision and on the audit
    # line), never a typed name.
    person = argparse.ArgumentParser(add_help=False)
    person.add_argument("--reason", default="", help="why, stored with the decision")

    listing = commands.add_parser("list", parents=[common], help="every agent ever heard of")
    listing.set_defaults(func=list_command)
    retire = commands.add_parser(
        "retire",
        parents=[common, person],
        help="take an agent out of service: its going offline pages no one",
    )
    retire.add_argument("name", help="the agent's id")
    retire.set_defaults(func=retire_command)
    silence = commands.add_parser(
        "silence",
        parents=[common, person],
        help="an agent's going offline or coming back pages no one until a time",
    )
    silence.add_argument("name", help="the agent's id")
    silence.add_argument(
        "--until",
        required=True,
        metavar="TIME",
        help="ISO 8601 date or date-time (local time in the SLA zone without an offset)",
    )
    silence.set_defaults(func=silence_command)
    activate = commands.add_parser(
        "activate",
        parents=[common, person],
        help="undo retire and silence: the agent pages on-call again",
    )
    activate.add_argument("name", help="the agent's id")
    activate.set_defaults(func=activate_command)


def retire_command(args: argparse.Namespace) -> int:
    decided = AgentPaging(retired=True, by=cli_actor(), reason=args.reason)
    done = f"agent {args.name} retired: its going offline pages no one"
    return _decide(args, decided, "agent.retire", args.reason, done)


def silence_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    zone = config.sla.timezone
    try:
        until = parse_instant(args.until, zone, end=True)
    except ValueError as exc:
        print(f"error: --until: {exc}", file=sys.stderr)
        return 2
    if until <= RealClock().now():
        print(f"error: --until: {args.until!r} is not in the future", file=sys.stderr)
        return 2
    decided = AgentPaging(silenced_until=until.astimezone(UTC), by=cli_actor(), reason=args.reason)
    shown = until.astimezone(ZoneInfo(zone)).isoformat(timespec="minutes")
    detail = f"until {shown}" + (f": {args.reason}" if args.reason else "")
    return _decide(
        args, decided, "agent.silence", detail, f"agent {args.name} silenced until {shown}"
    )


def activate_command(args: argparse.Namespace) -> int:
    decided = AgentPaging(by=cli_actor(), reason=args.reason)
    done = f"agent {args.name} active: it pages on-call again"
    return _decide(args, decided, "agent.activate", args.reason, done)


def _decide(
    args: argparse.Namespace, decided: AgentPaging, action: str, detail: str, done: str
) -> int:
    """Store ``decided`` with its audit line (``action``, ``detail``) in one transaction."""
    config = load_config(args.config)
    audit = AuditEntry(RealClock().now(), decided.by, action, f"agent {args.name}", detail)

    async def store_it() -> bool:
        async with Store.open(config.storage.url) as store:
            return await store.agents.set_paging(args.name, decided.to_dict(), audit=audit)

    try:
        known = asyncio.run(store_it())
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not known:
        print(f"error: no probe agent {args.name!r} has ever reported", file=sys.stderr)
        return 1
    print(done)
    return 0


def list_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    zone = ZoneInfo(config.sla.timezone)

    async def read() -> list[Any]:
        async with Store.open(config.storage.url) as store:
            return list(await store.agents.list())

    try:
        agents = asyncio.run(read())
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    now = RealClock().now()
    for agent in agents:
        decided = AgentPaging.from_dict(agent.meta.get(AGENT_PAGING_KEY))
        health = str(agent.meta.get("health") or agent.status)
        seen = agent.last_seen.astimezone(zone).isoformat(timespec="seconds")
        print(f"{agent.name}  {health}  last seen {seen}  {_paging_words(decided, now, zone)}")
    if not agents:
        print("no probe agent has reported yet")
    return 0


def _paging_words(decided: AgentPaging, now: datetime, zone: ZoneInfo) -> str:
    by = f" by {decided.by}" if decided.by else ""
    why = f": {decided.reason}" if decided.reason else ""
    if decided.retired:
        return f"retired{by}{why} (pages no one)"
    if decided.silenced_until is not None and decided.muted(now):
        until = decided.silenced_until.astimezone(zone).isoformat(timespec="minutes")
        return f"silenced until {until}{by}{why}"
    return "pages on-call"
