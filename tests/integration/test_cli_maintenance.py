"""``ctiwatch maintenance add|list|change|cancel`` as real processes over HTTP, against the real
console service (``example_scene`` at Tue 1 Dec 2026 10:00, SQLite) on a free port."""

from __future__ import annotations

import json

from test_cli_incidents import Served, ctiwatch, served  # noqa: F401  (the fixture)


def run(served: Served, *args: str) -> tuple[int, str, str]:  # noqa: F811
    # $USER no longer names who acts: the API token ($CTIWATCH_TOKEN, "tester") does.
    result = ctiwatch("maintenance", *args, "--url", served.url, user="sanne")
    return result.returncode, result.stdout, result.stderr


def test_maintenance_add_list_change_cancel_keep_the_history(served: Served) -> None:  # noqa: F811
    code, out, err = run(
        served, "add", "--start", "2026-12-03 22:00", "--end", "2026-12-04 02:00",
        "--service", "crm", "--customer", "acme", "--reason", "CRM connector upgrade",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == [
        "maintenance window 1: scheduled",
        "  state:   scheduled",
    ]
    assert "  r1 scheduled by tester at 2026-12-01 10:00 CET" in out
    code, out, err = run(served, "list")
    assert code == 0 and "CRM connector upgrade" in out and "scheduled" in out
    code, out, err = run(
        served, "change", "1", "--start", "2026-12-03 22:00", "--end", "2026-12-04 03:00",
        "--service", "crm", "--customer", "acme", "--reason", "CRM connector upgrade",
        "--why", "the vendor needs an hour more", "--json",
    )  # fmt: skip
    assert code == 0, err
    changed = json.loads(out)
    assert (changed["end"], changed["revision"]) == ("2026-12-04T03:00:00+01:00", 2)
    assert changed["history"][1]["before"]["end"] == "2026-12-04T01:00:00+00:00"
    code, out, err = run(served, "cancel", "1", "--why", "postponed")
    assert code == 0, err
    assert "  r3 cancelled by tester at 2026-12-01 10:00 CET: postponed" in out


def test_maintenance_add_inside_support_hours_exits_2_naming_the_option(
    served: Served,  # noqa: F811
) -> None:
    code, out, err = run(
        served, "add", "--start", "2026-12-03 16:59", "--end", "2026-12-03 18:00",
        "--reason", "upgrade",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err == (
        "error: maintenance must lie outside support hours: the window starts inside them "
        "(Thu 03 Dec 16:59) (--start)\n"
    )
    code, out, err = run(
        served, "add", "--start", "2026-12-02 22:00", "--end", "2026-12-03 02:00",
        "--reason", "upgrade",
    )  # fmt: skip
    assert code == 2
    assert "starts in 36h (an emergency is exempt, with a justification) (--start)" in err
    code, out, err = run(
        served, "add", "--start", "2026-12-01 11:00", "--end", "2026-12-01 12:00",
        "--reason", "hotfix", "--emergency",
    )  # fmt: skip
    assert code == 2 and err.endswith("(--justification)\n")
    code, out, err = run(
        served, "add", "--start", "2026-12-01 11:00", "--end", "2026-12-01 12:00",
        "--reason", "hotfix", "--emergency", "--justification", "calls drop since 09:50",
    )  # fmt: skip
    assert code == 0, err
    assert "  emergency, exempt from the rules: calls drop since 09:50" in out


def test_maintenance_cancel_of_an_unknown_window_exits_1(served: Served) -> None:  # noqa: F811
    code, _, err = run(served, "cancel", "9")
    assert (code, err) == (1, "error: maintenance window 9 does not exist\n")
