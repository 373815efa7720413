"""``users add|list|passwd|disable`` and ``tokens create|list|revoke``: accounts, directly on
the database of ``--config`` (the service need not run).

Passwords are read from a prompt (twice) or, when stdin is not a terminal, from its first line;
never from the command line. A token is printed once, at creation; only its hash is stored.
Exit codes: 0 done; 1 the database cannot be reached; 2 bad input, naming the field.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from ctiwatch.accounts import ROLES, AccountError, Accounts, cli_actor
from ctiwatch.apiclient import url_for
from ctiwatch.app import prepare_sqlite_folder
from ctiwatch.clock import RealClock
from ctiwatch.config import Config, load_config
from ctiwatch.storage import StorageError, Store

T = TypeVar("T")


def register(sub: Any) -> None:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", metavar="FILE", help="configuration file (its storage.url)")

    users = sub.add_parser("users", help="people who log in to the console, and their roles")
    commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = commands.add_parser(
        "add", parents=[config], help="add a user (the password is asked, or read from stdin)"
    )
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--phone", help="their on-call number: SMS replies from it act as them")
    add.set_defaults(func=users_add)
    listing = commands.add_parser("list", parents=[config], help="every user")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=users_list)
    passwd = commands.add_parser("passwd", parents=[config], help="set a user's password")
    passwd.add_argument("username")
    passwd.set_defaults(func=users_passwd)
    disable = commands.add_parser(
        "disable", parents=[config], help="stop a user logging in (kept for the audit log)"
    )
    disable.add_argument("username")
    disable.set_defaults(func=users_disable)

    tokens = sub.add_parser("tokens", help="API tokens for automation and kiosk links")
    actions = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", parents=[config], help="create a token; it is printed once"
    )
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument(
        "--kiosk",
        action="store_true",
        help="a read-only wall-screen link /kiosk/<token> (role viewer)",
    )
    create.set_defaults(func=tokens_create)
    tlist = actions.add_parser("list", parents=[config], help="every token (never the secret)")
    tlist.add_argument("--json", action="store_true")
    tlist.set_defaults(func=tokens_list)
    revoke = actions.add_parser("revoke", parents=[config], help="revoke a token at once")
    revoke.add_argument("name")
    revoke.set_defaults(func=tokens_revoke)


def _run(args: argparse.Namespace, work: Callable[[Accounts, Config], Awaitable[T]]) -> T | int:
    config = load_config(args.config)  # ConfigError: exit 2 with its lines

    async def run() -> T:
        prepare_sqlite_folder(config.storage.url)
        async with Store.open(config.storage.url) as store:
            return await work(Accounts(store, RealClock()), config)

    try:
        return asyncio.run(run())
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except AccountError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


def read_password(prompt: str = "Password") -> str:
    """From the terminal (asked twice), or the first line of stdin when it is not one."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"{prompt}: ")
    again = getpass.getpass(f"{prompt} (again): ")
    if first != again:
        raise AccountError("password: the two entries differ", "password")
    return first


def _when(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value is not None else "—"


def users_add(args: argparse.Namespace) -> int:
    try:
        password = read_password()
    except AccountError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2

    async def work(accounts: Accounts, config: Config) -> int:
        user = await accounts.add_user(
            args.username, args.role, password, phone=args.phone, by=cli_actor()
        )
        print(f"user {user.username} added ({user.role})")
        return 0

    return _code(_run(args, work))


def users_list(args: argparse.Namespace) -> int:
    async def work(accounts: Accounts, config: Config) -> int:
        tz = ZoneInfo(config.sla.timezone)
        users = await accounts.users()
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "username": u.username,
                            "role": u.role,
                            "phone": u.phone,
                            "active": u.active,
                            "created_at": u.created_at.isoformat(),
                        }
                        for u in users
                    ],
                    indent=2,
                )
            )
            return 0
        if not users:
            print("no users")
        for u in users:
            state = "active" if u.active else f"disabled {_when(u.disabled_at, tz)}"
            print(f"{u.username:<20} {u.role:<11} {u.phone or '—':<16} {state}")
        return 0

    return _code(_run(args, work))


def users_passwd(args: argparse.Namespace) -> int:
    try:
        password = read_password("New password")
    except AccountError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2

    async def work(accounts: Accounts, config: Config) -> int:
        await accounts.set_password(args.username, password, by=cli_actor())
        print(f"password of {args.username} changed; their sessions ended")
        return 0

    return _code(_run(args, work))


def users_disable(args: argparse.Namespace) -> int:
    async def work(accounts: Accounts, config: Config) -> int:
        await accounts.disable_user(args.username, by=cli_actor())
        print(f"user {args.username} disabled; their sessions ended")
        return 0

    return _code(_run(args, work))


def tokens_create(args: argparse.Namespace) -> int:
    async def work(accounts: Accounts, config: Config) -> int:
        secret, token = await accounts.create_token(
            args.name, args.role, kiosk=args.kiosk, by=cli_actor()
        )
        print(f"token {token.name} ({token.role}) created; it is shown only this once:")
        print(secret)
        if token.kiosk:
            print(f"wall screen: {url_for(config.web.host, config.web.port)}/kiosk/{secret}")
        return 0

    return _code(_run(args, work))


def tokens_list(args: argparse.Namespace) -> int:
    async def work(accounts: Accounts, config: Config) -> int:
        tz = ZoneInfo(config.sla.timezone)
        tokens = await accounts.tokens()
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "name": t.name,
                            "role": t.role,
                            "kiosk": t.kiosk,
                            "prefix": t.prefix,
                            "created_by": t.created_by,
                            "created_at": t.created_at.isoformat(),
                            "last_used_at": t.last_used_at and t.last_used_at.isoformat(),
                            "revoked_at": t.revoked_at and t.revoked_at.isoformat(),
                        }
                        for t in tokens
                    ],
                    indent=2,
                )
            )
            return 0
        if not tokens:
            print("no tokens")
        for t in tokens:
            state = "active" if t.active else f"revoked {_when(t.revoked_at, tz)}"
            kind = "kiosk" if t.kiosk else "api"
            print(
                f"{t.name:<20} {t.role:<11} {kind:<6} {t.prefix}…  "
                f"last used {_when(t.last_used_at, tz)}  {state}"
            )
        return 0

    return _code(_run(args, work))


def tokens_revoke(args: argparse.Namespace) -> int:
    async def work(accounts: Accounts, config: Config) -> int:
        await accounts.revoke_token(args.name, by=cli_actor())
        print(f"token {args.name} revoked")
        return 0

    return _code(_run(args, work))


def _code(result: int) -> int:
    return result
