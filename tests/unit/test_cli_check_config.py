"""``ctiwatch check-config`` checks what the schema cannot: SLA holiday names, agent locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctiwatch.cli import main

TOPOLOGY = """\
topology:
  customers:
    - id: acme
      name: ACME B.V.
      locations:
        - id: acme-ams
          name: Amsterdam
          users: [alice]
"""


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    path = tmp_path / "ctiwatch.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return code, out.replace(str(path), "FILE"), err


def test_removed_holiday_that_does_not_exist_fails_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "sla:\n  removed_holidays: [Good Friday, Boxing Week]\n"
    assert check(tmp_path, text, capsys) == (
        2,
        "",
        "error: sla.removed_holidays: 'Boxing Week' is not a holiday name in NL "
        '(names such as "Good Friday" or "Goede vrijdag")\n',
    )


def test_removed_holiday_that_exists_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = TOPOLOGY + "sla:\n  removed_holidays: [Good Friday]\n"
    assert check(tmp_path, text, capsys) == (0, "FILE: ok (1 customers, 1 users)\n", "")


def test_agent_location_missing_from_the_topology_fails_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = TOPOLOGY + "agent:\n  name: agent-1\n  locations: [acme-ams, acme-rtm]\n"
    assert check(tmp_path, text, capsys) == (
        2,
        "",
        "error: agent.locations: unknown location 'acme-rtm' (known: acme-ams)\n",
    )


def test_agent_with_known_locations_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = TOPOLOGY + "agent:\n  name: agent-1\n  locations: [acme-ams]\n"
    assert check(tmp_path, text, capsys) == (0, "FILE: ok (1 customers, 1 users)\n", "")


def test_every_problem_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "sla:\n  removed_holidays: [Nope]\nagent:\n  locations: [x-1]\n"
    code, out, err = check(tmp_path, text, capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: sla.removed_holidays: 'Nope' is not a holiday name in NL "
        '(names such as "Good Friday" or "Goede vrijdag")',
        "error: agent.locations: unknown location 'x-1' (known: none)",
    ]
