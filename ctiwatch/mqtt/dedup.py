"""Recently seen result ids: QoS 1 means "at least once", this makes it "once" in practice.

The database's unique key on ``result_id`` is the final word; this bounded LRU keeps the
common case (a redelivery seconds after the first copy) from reaching the database at all.
"""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    def __init__(self, capacity: int = 200_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, result_id: str) -> bool:
        """``True`` the first time ``result_id`` is seen (within the last ``capacity`` ids)."""
        if result_id in self._ids:
            self._ids.move_to_end(result_id)
            return False
        self._ids[result_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, result_id: object) -> bool:
        return result_id in self._ids
