"""``check-config`` and ``run``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ctiwatch.config import load_config


def register(sub: Any) -> None:
    check = sub.add_parser("check-config", help="validate a configuration file without starting")
    check.add_argument("file")
    check.set_defaults(func=check_config)


def check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    customers = config.topology.customers
    users = sum(len(loc.users) for c in customers for loc in c.locations)
    print(f"{args.file}: ok ({len(customers)} customers, {users} users)", file=sys.stdout)
    return 0
