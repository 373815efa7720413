"""The thresholds of ``classification.md``; the shell builds them from ``ClassificationConfig``.

The field names are those of the configuration section, so
``Thresholds(**config.classification.model_dump())`` is the whole conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Thresholds:
    failed_rounds: int = 3
    degraded_rate: float = 0.90
    degraded_window: timedelta = timedelta(hours=1)
    degraded_min_calls: int = 20
    frequent_misses: int = 10
    some_misses: int = 3
    misses_window: timedelta = timedelta(hours=24)
    recovery_rounds: int = 3
    miss_quiet_period: timedelta = timedelta(minutes=30)

    def __post_init__(self) -> None:
        for name in (
            "failed_rounds",
            "degraded_min_calls",
            "frequent_misses",
            "some_misses",
            "recovery_rounds",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.degraded_rate <= 1:
            raise ValueError("degraded_rate must be above 0 and at most 1")
        if self.some_misses >= self.frequent_misses:
            raise ValueError("some_misses must be lower than frequent_misses")
        for name in ("degraded_window", "misses_window", "miss_quiet_period"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")

    @property
    def degraded_fraction(self) -> Fraction:
        """The degraded rate as an exact fraction (0.90 -> 9/10), so 18/20 is not below it."""
        return Fraction(self.degraded_rate).limit_denominator(1_000_000)

    @property
    def degraded_minutes(self) -> int:
        """The recognition window in whole minute buckets (rounded up)."""
        return max(1, -(-self.degraded_window // MINUTE))
