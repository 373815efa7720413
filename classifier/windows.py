"""Bounded rolling counters: memory per target never grows with the number of results."""

from __future__ import annotations

from bisect import insort
from datetime import datetime


class MinuteCounts:
    """Calls and recognised calls in the last ``size`` minute buckets.

    A bucket is a UTC minute (``epoch seconds // 60``). Asked at minute ``M``, the window holds
    minutes ``M - size + 1`` to ``M``: a call counts until its minute is ``size`` minutes old,
    i.e. for ``size - 1`` to ``size`` minutes. For calls at whole minutes (probe rounds every
    60 s) that is exactly the trailing window ``(now - size min, now]``.
    """

    __slots__ = ("_calls", "_head", "_recognised", "_size", "calls", "recognised")

    def __init__(self, size: int) -> None:
        self._size = size
        self._calls = [0] * size
        self._recognised = [0] * size
        self._head: int | None = None  # the newest minute the buckets describe
        self.calls = 0
        self.recognised = 0

    def roll(self, minute: int) -> None:
        """Move the window so that it ends at ``minute`` (never backwards)."""
        head = self._head
        if head is None or minute - head >= self._size:
            self._calls = [0] * self._size
            self._recognised = [0] * self._size
            self.calls = self.recognised = 0
            self._head = minute
            return
        if minute <= head:
            return
        for m in range(head + 1, minute + 1):
            i = m % self._size
            self.calls -= self._calls[i]
            self.recognised -= self._recognised[i]
            self._calls[i] = 0
            self._recognised[i] = 0
        self._head = minute

    def totals_at(self, minute: int) -> tuple[int, int]:
        """(calls, recognised) in the window ending at ``minute``, without moving it."""
        head = self._head
        if head is None or minute - head >= self._size:
            return 0, 0
        if minute <= head:
            return self.calls, self.recognised
        calls, recognised = self.calls, self.recognised
        for m in range(head + 1, minute + 1):
            i = m % self._size
            calls -= self._calls[i]
            recognised -= self._recognised[i]
        return calls, recognised

    def add(self, minute: int, recognised: bool) -> None:
        if minute != self._head:  # most calls fall in the newest minute: nothing to roll
            self.roll(minute)
            assert self._head is not None
            if minute <= self._head - self._size:
                return  # a late call that already left the window
        i = minute % self._size
        self._calls[i] += 1
        self.calls += 1
        if recognised:
            self._recognised[i] += 1
            self.recognised += 1


class RecentInstants:
    """The ``capacity`` most recent instants, oldest first.

    Enough to decide exactly whether at least ``capacity`` (or fewer) events happened in a
    trailing window: there are at least k events in the window iff the k-th most recent is in it.
    """

    __slots__ = ("_capacity", "_instants")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._instants: list[datetime] = []

    def add(self, at: datetime) -> None:
        insort(self._instants, at)
        if len(self._instants) > self._capacity:
            del self._instants[0]

    def count_after(self, start: datetime) -> int:
        """Events strictly after ``start``, capped at ``capacity``."""
        count = 0
        for at in reversed(self._instants):
            if at <= start:
                break
            count += 1
        return count

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def instants(self) -> tuple[datetime, ...]:
        return tuple(self._instants)
