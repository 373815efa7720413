"""``ctiwatch sla calendar`` and the in-process form of ``sla deadlines``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctiwatch.cli import main


def test_calendar_lists_christmas_week_with_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sla", "calendar", "--from", "2026-12-24", "--to", "2026-12-28"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "# support hours 08:30-17:00 Europe/Amsterdam, holidays NL",
        "2026-12-24  Thu  working  08:30-17:00",
        "2026-12-25  Fri  closed   Christmas Day",
        "2026-12-26  Sat  closed   Second Day of Christmas",
        "2026-12-27  Sun  closed   weekend",
        "2026-12-28  Mon  working  08:30-17:00",
    ]


def test_calendar_json_marks_configured_closed_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sla:\n  closed_days: ['2026-12-31']\n", encoding="utf-8")
    argv = ["sla", "calendar", "--from", "2026-12-31", "--to", "2026-12-31", "--format", "json"]
    assert main([*argv, "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "timezone": "Europe/Amsterdam",
        "days": [
            {
                "date": "2026-12-31",
                "weekday": "Thu",
                "working": False,
                "reason": "closed day (configured)",
                "support_hours": None,
            }
        ],
    }


def test_calendar_refuses_reversed_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sla", "calendar", "--from", "2026-12-31", "--to", "2026-12-01"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_calendar_refuses_a_bad_date(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sla", "calendar", "--from", "2026-02-30", "--to", "2026-03-01"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--from" in err


def test_deadlines_in_process_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sla", "deadlines", "--priority", "2", "--reported", "2026-12-24T16:00:00+01:00"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["repair_due"] == "2026-12-29T17:00:00+01:00"
