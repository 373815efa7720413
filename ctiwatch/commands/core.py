"""``check-config`` and ``run``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ctiwatch.config import Config, ConfigError, load_config
from ctiwatch.settings import monitor_settings, policy_from_config


def register(sub: Any) -> None:
    check = sub.add_parser("check-config", help="validate a configuration file without starting")
    check.add_argument("file")
    check.set_defaults(func=check_config)


def check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    check_references(config)
    customers = config.topology.customers
    users = sum(len(loc.users) for c in customers for loc in c.locations)
    checks = sum(len(config.probes.checks) + len(c.checks) for c in customers)
    counted = f"{len(customers)} customers, {users} users" + (
        f", {checks} checks" if checks else ""
    )
    print(f"{args.file}: ok ({counted})", file=sys.stdout)
    return 0


def check_references(config: Config) -> None:
    """What the schema alone cannot see: the core values ``ctiwatch run`` builds can be built
    (holiday names exist, rotation overrides are times) and the agent's locations are in the
    topology. Raises :class:`ConfigError`."""
    errors: list[str] = []
    for build in (lambda: policy_from_config(config.sla), lambda: monitor_settings(config)):
        try:
            build()
        except ConfigError as exc:
            errors += exc.errors
    if config.agent is not None:
        known = [loc.id for c in config.topology.customers for loc in c.locations]
        errors += [
            f"agent.locations: unknown location {loc!r} (known: {', '.join(known) or 'none'})"
            for loc in config.agent.locations
            if loc not in known
        ]
    if errors:
        raise ConfigError(errors)
