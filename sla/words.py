"""How ctiwatch words things for people, said once for the web, the CLI and the messages.

Pure: standard library only.
"""

from __future__ import annotations

import math
from datetime import timedelta
from fractions import Fraction


def percent(share: float | Fraction | None) -> str:
    """``share`` (0..1) as a percentage with one decimal, rounded *down*.

    Rounded down so that a figure never contradicts a threshold comparison made on the exact
    value: 89.95% is below 90% and shows as ``89.9%``, never ``90.0%``. A float is read as the
    decimal it prints as (``0.29`` is 29%, not 28.999…%).
    """
    if share is None:
        return "—"
    exact = Fraction(repr(share)) if isinstance(share, float) else Fraction(share)
    tenths = math.floor(exact * 1000)
    return f"{tenths // 10}.{tenths % 10}%"


def window_words(window: timedelta) -> str:
    """A trailing window, short: ``1h``, ``30m``, ``1h 30m``, ``2d``."""
    minutes = int(window.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts) or f"{int(window.total_seconds())}s"


SERVICE_NAMES: dict[str, str] = {
    "click2dial": "Click2Dial",
    "crm": "CRM integration",
    "http": "HTTP check",
}


def service_name(service: str) -> str:
    """A service's display name: ``crm`` is ``CRM integration``; an unknown one as it is."""
    return SERVICE_NAMES.get(service, service)


def unset_target(priority: int) -> str:
    """What a deadline the SLA does not set is called, in the SLA's words (sla.md, section 3):
    P1's repair is "to be determined"; P3 and P4 update and repair are "best effort" (and a
    target the configuration leaves unset for P2 is best effort too)."""
    return "to be determined" if priority == 1 else "best effort"
