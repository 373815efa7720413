"""The ``ctiwatch`` command line: a thin dispatcher over ``ctiwatch.commands.*``.

Each command module has ``register(subparsers)``; the parser it adds sets ``func`` to a
function of the parsed arguments returning the exit code. A :class:`ConfigError` anywhere
becomes its lines on stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ctiwatch.config import ConfigError

# Top-level command -> the module that registers it. Only the module of the command being run
# is imported (the others pull in aiohttp, SQLAlchemy, twilio, ...), so a quick command such as
# ``sla deadlines`` starts quickly; ``--help`` and an unknown command import them all.
COMMANDS = {
    "check-config": "ctiwatch.commands.core",
    "sla": "ctiwatch.commands.sla",
    "db": "ctiwatch.commands.db",
    "agent": "ctiwatch.commands.agent",
    "agents": "ctiwatch.commands.agents",
    "customers": "ctiwatch.commands.customers",
    "report": "ctiwatch.commands.report",
    "alerts": "ctiwatch.commands.alerts",
    "simulator": "ctiwatch.commands.simulator",
    "simulate": "ctiwatch.commands.simulate",
    "incidents": "ctiwatch.commands.incidents",
    "maintenance": "ctiwatch.commands.maintenance",
    "status": "ctiwatch.commands.status",
    "run": "ctiwatch.commands.run",
    "users": "ctiwatch.commands.users",
    "tokens": "ctiwatch.commands.users",
    "mqtt": "ctiwatch.commands.mqtt",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, as the CLI contracts ask; `--help` still shows the full usage.
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ctiwatch",
        description="Watch CloudCTI Click2Dial and CRM integration and run the SLA's incidents.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    command = next((arg for arg in (argv or ()) if not arg.startswith("-")), None)
    chosen = COMMANDS.get(command or "")
    for name in (chosen,) if chosen is not None else COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(arguments).parse_args(arguments)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for line in exc.errors:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
