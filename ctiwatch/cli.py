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

COMMAND_MODULES = (
    "ctiwatch.commands.core",
    "ctiwatch.commands.sla",
    "ctiwatch.commands.db",
    "ctiwatch.commands.agent",
    "ctiwatch.commands.report",
    "ctiwatch.commands.alerts",
    "ctiwatch.commands.simulator",
    "ctiwatch.commands.simulate",
    "ctiwatch.commands.incidents",
    "ctiwatch.commands.status",
    "ctiwatch.commands.run",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, as the CLI contracts ask; `--help` still shows the full usage.
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ctiwatch",
        description="Watch CloudCTI Click2Dial and CRM integration and run the SLA's incidents.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
