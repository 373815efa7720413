"""One ``Clock`` protocol (``sla.clock``), named by every layer: the shell's clocks, the probes and
the outbox sender all mean the same thing by "a clock"."""

from __future__ import annotations

import ast
from pathlib import Path

import alerting.sender
import ctiwatch.clock
import probes
import probes.base
import sla.clock

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sla", "classifier", "incidents", "alerting", "probes", "ctiwatch")


def test_every_layer_names_the_same_clock_protocol() -> None:
    assert ctiwatch.clock.Clock is sla.clock.Clock
    assert probes.Clock is sla.clock.Clock
    assert probes.base.Clock is sla.clock.Clock
    assert alerting.sender.Clock is sla.clock.Clock


def _protocols_with_now() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = {ast.unparse(base) for base in node.bases}
                methods = {
                    item.name
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                }
                if bases & {"Protocol", "typing.Protocol"} and "now" in methods:
                    found.append(f"{path.relative_to(ROOT)}:{node.name}")
    return found


def test_no_second_clock_protocol_is_declared() -> None:
    assert _protocols_with_now() == ["sla/clock.py:Clock"]


def test_the_shell_clocks_keep_the_protocol_shape() -> None:
    wanted = {"now", "sleep", "sleep_until"}
    for clock in (ctiwatch.clock.RealClock, ctiwatch.clock.LoopClock, ctiwatch.clock.FixedClock):
        assert wanted <= set(dir(clock)), clock.__name__
