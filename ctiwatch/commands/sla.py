"""``sla deadlines`` / ``sla calendar`` (owned by the SLA engine)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    sub.add_parser("sla", help="SLA calendar and deadlines")
