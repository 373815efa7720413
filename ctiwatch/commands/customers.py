"""``ctiwatch customers link <id> [--rotate]``: the link of a customer's own status page.

The link (``<base>/status/<token>``) is printed once, when it is made: only the token's hash
is stored. ``--rotate`` makes a new one and the old link stops working at once (404); without
it a customer that has a link keeps it (exit 1, it cannot be shown again). ``list`` shows which
customers have a link and which are public (``topology.customers[].public``). Making or
rotating a link writes an audit line: the operating system's user, marked ``(cli)``.

Exit codes: 0 done; 1 the database cannot be reached, or the customer has a link already;
2 bad input (an unknown customer, naming it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ctiwatch.accounts import cli_actor
from ctiwatch.clock import RealClock
from ctiwatch.config import load_config
from ctiwatch.storage import AuditEntry, StorageError, Store


def register(sub: Any) -> None:
    customers = sub.add_parser("customers", help="customers' status page links")
    commands = customers.add_subparsers(dest="customers_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="configuration file (default: embedded defaults)"
    )
    make = commands.add_parser(
        "link", parents=[common], help="make (or with --rotate replace) a customer's page link"
    )
    make.add_argument("customer", help="the customer's id (topology.customers[].id)")
    make.add_argument(
        "--rotate", action="store_true", help="replace the link: the old one stops working"
    )
    make.add_argument(
        "--base-url",
        metavar="URL",
        help="the address customers reach ctiwatch at (default: http://<web.host>:<web.port>)",
    )
    make.set_defaults(func=link_command)
    listing = commands.add_parser("list", parents=[common], help="customers, links and public")
    listing.set_defaults(func=list_command)


def link_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    customer = config.topology.customer(args.customer)
    if customer is None:
        known = ", ".join(c.id for c in config.topology.customers) or "none configured"
        print(f"error: customer: unknown customer {args.customer!r} ({known})", file=sys.stderr)
        return 2
    base = args.base_url or f"http://{config.web.host}:{config.web.port}"
    if not base.startswith(("http://", "https://")):
        print(f"error: --base-url: {base!r} must start with http:// or https://", file=sys.stderr)
        return 2

    async def make() -> str | None:
        now, actor = RealClock().now(), cli_actor()
        action = "customer.link.rotate" if args.rotate else "customer.link"
        audit = AuditEntry(now, actor, action, f"customer {customer.id}")
        async with Store.open(config.storage.url) as store:
            return await store.customer_links.make(
                customer.id, now, actor, rotate=args.rotate, audit=audit
            )

    try:
        token = asyncio.run(make())
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if token is None:
        print(
            f"error: customer {customer.id} has a link already; it is shown only when made "
            "(--rotate makes a new one and the old one stops working)",
            file=sys.stderr,
        )
        return 1
    print(f"{base.rstrip('/')}/status/{token}")
    if args.rotate:
        print(f"the previous link of {customer.id} no longer works", file=sys.stderr)
    return 0


def list_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)

    async def read() -> dict[str, bool]:
        async with Store.open(config.storage.url) as store:
            return {
                c.id: await store.customer_links.has_link(c.id) for c in config.topology.customers
            }

    try:
        links = asyncio.run(read())
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for c in config.topology.customers:
        public = f"public at /status/c/{c.id}" if c.public else "not public"
        print(f"{c.id}  {'has a link' if links[c.id] else 'no link'}  {public}")
    return 0
