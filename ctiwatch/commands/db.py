"""``ctiwatch db upgrade``: migrate the database to the newest schema (also done on start)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ctiwatch.config import load_config
from ctiwatch.storage import StorageError, Store


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="database maintenance")
    commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = commands.add_parser(
        "upgrade", help="run the database migrations up to the newest schema"
    )
    upgrade.add_argument(
        "--config", metavar="FILE", help="configuration file (default: embedded defaults)"
    )
    upgrade.set_defaults(func=upgrade_command)


def upgrade_command(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        url, revision = asyncio.run(_upgrade(config.storage.url))
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: schema at revision {revision} (newest)")
    return 0


async def _upgrade(url: str) -> tuple[str, str | None]:
    async with Store.open(url) as store:  # opening migrates
        return store.url, await store.revision()
