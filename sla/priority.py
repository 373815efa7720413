"""The SLA's four priorities (section 3)."""

from __future__ import annotations

from enum import IntEnum


class Priority(IntEnum):
    """Lower number, higher priority: ``max`` severity is ``min`` number."""

    CRITICAL = 1
    HIGH = 2
    NORMAL = 3
    LOW = 4

    @property
    def label(self) -> str:
        return {1: "Critical", 2: "High", 3: "Normal", 4: "Low"}[self.value]
