"""Instants as ctiwatch hands them to programs: ISO 8601 with the offset of the display zone.

One rule for the JSON API, ``ctiwatch simulate`` and ``ctiwatch sla deadlines`` (the last two
are contracts, see simulate.md): seconds always, microseconds only when there are any
(``2026-12-28T15:30:00+01:00``), which is what ``isoformat``'s ``auto`` precision prints.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import overload


@overload
def iso_local(at: datetime, zone: tzinfo) -> str: ...


@overload
def iso_local(at: datetime | None, zone: tzinfo) -> str | None: ...


def iso_local(at: datetime | None, zone: tzinfo) -> str | None:
    """``at`` (aware) in ``zone`` as ISO 8601; None stays None (a target that is not set)."""
    return None if at is None else at.astimezone(zone).isoformat()
