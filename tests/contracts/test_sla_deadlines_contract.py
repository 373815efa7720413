"""The ``ctiwatch sla deadlines`` contract of simulate.md, driven as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def deadlines(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ctiwatch", "sla", "deadlines", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def answer(priority: str, reported: str, *extra: str) -> dict[str, object]:
    result = deadlines("--priority", priority, "--reported", reported, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1
    document: dict[str, object] = json.loads(result.stdout)
    return document


# --- sla.md worked examples -------------------------------------------------------------------


def test_p1_reported_friday_afternoon_is_due_monday_morning() -> None:
    assert answer("1", "2026-12-04T15:00:00+01:00") == {
        "priority": 1,
        "reported_at": "2026-12-04T15:00:00+01:00",
        "response_due": "2026-12-07T10:30:00+01:00",
        "update_due": "2026-12-07T10:30:00+01:00",
        "repair_due": None,
    }


def test_p1_reported_tuesday_evening_is_due_wednesday_midday() -> None:
    assert answer("1", "2026-12-01T20:00:00+01:00") == {
        "priority": 1,
        "reported_at": "2026-12-01T20:00:00+01:00",
        "response_due": "2026-12-02T12:30:00+01:00",
        "update_due": "2026-12-02T12:30:00+01:00",
        "repair_due": None,
    }


def test_p2_reported_monday_afternoon_is_due_tuesday_and_repaired_wednesday() -> None:
    assert answer("2", "2026-11-30T14:00:00+01:00") == {
        "priority": 2,
        "reported_at": "2026-11-30T14:00:00+01:00",
        "response_due": "2026-12-01T13:30:00+01:00",
        "update_due": "2026-12-01T13:30:00+01:00",
        "repair_due": "2026-12-02T17:00:00+01:00",
    }


def test_p2_reported_on_christmas_eve_is_due_monday_afternoon() -> None:
    assert answer("2", "2026-12-24T16:00:00+01:00") == {
        "priority": 2,
        "reported_at": "2026-12-24T16:00:00+01:00",
        "response_due": "2026-12-28T15:30:00+01:00",
        "update_due": "2026-12-28T15:30:00+01:00",
        "repair_due": "2026-12-29T17:00:00+01:00",
    }


def test_p3_reported_saturday_is_due_monday_closing() -> None:
    assert answer("3", "2026-12-05T11:00:00+01:00") == {
        "priority": 3,
        "reported_at": "2026-12-05T11:00:00+01:00",
        "response_due": "2026-12-07T17:00:00+01:00",
        "update_due": None,
        "repair_due": None,
    }


def test_p1_reported_friday_in_summer_time_is_due_monday_in_winter_time() -> None:
    assert answer("1", "2026-10-23T15:30:00+02:00") == {
        "priority": 1,
        "reported_at": "2026-10-23T15:30:00+02:00",
        "response_due": "2026-10-26T11:00:00+01:00",
        "update_due": "2026-10-26T11:00:00+01:00",
        "repair_due": None,
    }


# --- input forms ------------------------------------------------------------------------------


def test_report_time_in_utc_is_echoed_in_amsterdam_time() -> None:
    document = answer("4", "2026-12-04T10:00:00Z")
    assert document["reported_at"] == "2026-12-04T11:00:00+01:00"
    assert document["response_due"] == "2026-12-07T11:00:00+01:00"


def test_microseconds_are_shown_only_when_not_zero() -> None:
    document = answer("1", "2026-12-01T10:00:00.250000+01:00")
    assert document["reported_at"] == "2026-12-01T10:00:00.250000+01:00"
    assert document["response_due"] == "2026-12-01T14:00:00.250000+01:00"


def test_config_file_changes_the_targets_and_closed_days(tmp_path: Path) -> None:
    config = tmp_path / "ctiwatch.yaml"
    config.write_text(
        "sla:\n"
        "  closed_days: ['2026-12-31']\n"
        "  targets:\n"
        "    1: {response: 4h, update: 4h, repair_working_days: 1}\n",
        encoding="utf-8",
    )
    assert answer("1", "2026-12-30T16:00:00+01:00", "--config", str(config)) == {
        "priority": 1,
        "reported_at": "2026-12-30T16:00:00+01:00",
        "response_due": "2027-01-04T11:30:00+01:00",
        "update_due": "2027-01-04T11:30:00+01:00",
        "repair_due": "2027-01-04T17:00:00+01:00",
    }


# --- bad input: exit 2, one line on stderr naming the option ---------------------------------


@pytest.mark.parametrize(
    ("priority", "reported", "option"),
    [
        ("5", "2026-12-01T10:00:00+01:00", "--priority"),
        ("0", "2026-12-01T10:00:00+01:00", "--priority"),
        ("x", "2026-12-01T10:00:00+01:00", "--priority"),
        ("1.5", "2026-12-01T10:00:00+01:00", "--priority"),
        ("1", "2026-12-01T10:00:00", "--reported"),
        ("1", "garbage", "--reported"),
        ("1", "2026-13-01T10:00:00+01:00", "--reported"),
        ("1", "9999-12-31T23:00:00-05:00", "--reported"),
    ],
    ids=[
        "priority-5",
        "priority-0",
        "priority-x",
        "priority-fraction",
        "time-without-offset",
        "garbage-time",
        "impossible-date",
        "time-at-end-of-range",
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_option(
    priority: str, reported: str, option: str
) -> None:
    result = deadlines("--priority", priority, "--reported", reported)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert option in result.stderr


def test_missing_priority_exits_2_with_one_line() -> None:
    result = deadlines("--reported", "2026-12-01T10:00:00+01:00")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--priority" in result.stderr


def test_broken_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("sla:\n  removed_holidays: ['Kings Day']\n", encoding="utf-8")
    result = deadlines("--priority", "1", "--reported", "2026-12-01T10:00:00+01:00",
                       "--config", str(config))  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert "sla.removed_holidays" in result.stderr
    assert "Traceback" not in result.stderr
