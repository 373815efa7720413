"""The ``sla`` package stays pure: standard library, ``holidays`` and ``zoneinfo`` only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SLA = Path(__file__).resolve().parents[2] / "sla"
ALLOWED = {"holidays", "sla", "zoneinfo", "__future__"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_sla_imports_only_stdlib_holidays_and_zoneinfo() -> None:
    offenders = {
        f"{path.name}: {root}"
        for path in sorted(SLA.glob("*.py"))
        for root in imported_roots(path)
        if root not in ALLOWED and root not in sys.stdlib_module_names
    }
    assert offenders == set()


def test_sla_never_reads_the_wall_clock() -> None:
    for path in sorted(SLA.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for call in ("datetime.now(", "date.today(", "time.time(", "utcnow("):
            assert call not in text, f"{path.name} calls {call}"
