"""The results backlog kept while the database is away: bounded, oldest first, drops counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.persist import Backlog

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TARGET = TargetKey(Service.CRM, "acme", "acme-ams", "alice")


def results(*ids: int) -> list[ProbeResult]:
    return [
        ProbeResult(f"r{n}", TARGET, T0 + timedelta(seconds=n), True, True, 5.0, 200, "ok")
        for n in ids
    ]


def drain(backlog: Backlog) -> list[str]:
    out: list[str] = []
    while (batch := backlog.take()) is not None:
        out += [r.result_id for r in batch]
        backlog.done()
    return out


def test_batches_come_out_oldest_first() -> None:
    backlog = Backlog(10)
    backlog.add(results(1, 2))
    backlog.add(results(3))
    assert len(backlog) == 3
    assert drain(backlog) == ["r1", "r2", "r3"]
    assert len(backlog) == 0 and backlog.kept == 3 and backlog.dropped == 0


def test_a_full_backlog_drops_the_oldest_results_and_counts_them() -> None:
    backlog = Backlog(4)
    assert backlog.add(results(1, 2, 3)) == 0
    assert backlog.add(results(4, 5)) == 1  # r1 goes
    assert backlog.add(results(6, 7, 8, 9, 10)) == 4  # more than the whole limit at once
    assert len(backlog) == 4 and backlog.dropped == 5
    assert drain(backlog) == ["r7", "r8", "r9", "r10"]


def test_the_batch_being_stored_is_never_cut_and_goes_back_first_if_not_stored() -> None:
    backlog = Backlog(3)
    backlog.add(results(1, 2))
    taken = backlog.take()
    assert taken is not None and [r.result_id for r in taken] == ["r1", "r2"]
    assert backlog.add(results(3, 4)) == 0  # r1, r2 are being stored: they are not cut
    assert len(backlog) == 4
    backlog.put_back()  # the database went away again: first in line once more
    assert drain(backlog) == ["r1", "r2", "r3", "r4"]
    backlog.add(results(5))
    taken = backlog.take()
    backlog.done()
    assert len(backlog) == 0


def test_a_backlog_holds_at_least_one_result() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Backlog(0)
