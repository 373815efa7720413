"""Capped exponential backoff for reconnecting (broker, database)."""

from __future__ import annotations

import random


class Backoff:
    """``initial``, doubled after every failure up to ``maximum``; ``reset()`` after a success.

    Each delay is scaled by a random factor in [0.5, 1] so a fleet of agents that lost the
    same broker does not come back in lockstep.
    """

    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial or factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self._initial = initial
        self._maximum = maximum
        self._factor = factor
        self._rng = rng if rng is not None else random.Random()
        self._next = initial

    def next(self) -> float:
        """The delay before the next attempt (and grow the one after it)."""
        delay = self._next
        self._next = min(self._maximum, self._next * self._factor)
        return delay * (0.5 + self._rng.random() / 2)

    def reset(self) -> None:
        self._next = self._initial
