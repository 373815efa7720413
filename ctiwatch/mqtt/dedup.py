"""Recently seen result ids: QoS 1 means "at least once", this makes it "once" in practice.

The database's unique key on ``result_id`` is the final word; this bounded filter keeps the
common case (a redelivery seconds after the first copy) from reaching the database at all.

It is compact: an id is kept as its 16-byte BLAKE2b digest, never as a Python object of its
own. The digests live in a few thousand ``bytearray`` blocks chosen by the digest's first bits
(each a short run of digests in the order they came, searched with ``bytearray.find``) and an
``array`` of block numbers in arrival order says which block holds the oldest: about 18 bytes
per id, so a window of 200,000 ids takes ~3.7 MB where an ordered dictionary of the id strings
took ~35 MB. The window is exactly the last ``capacity`` ids first seen (a repeat does not
renew an id).
"""

from __future__ import annotations

import hashlib
from array import array

DIGEST = 16  # bytes per remembered id; a false "seen" needs a 128-bit collision
_IDS_PER_BLOCK = 64  # about, once full: a block is searched in one short memory scan


def _digest(result_id: str) -> bytes:
    return hashlib.blake2b(result_id.encode(), digest_size=DIGEST).digest()


class RecentIds:
    def __init__(self, capacity: int = 200_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        bits = min(16, max(0, (capacity // _IDS_PER_BLOCK).bit_length() - 1))
        self._mask = (1 << bits) - 1
        self._blocks = [bytearray() for _ in range(1 << bits)]
        self._order = array("H", bytes(2 * capacity))  # a ring of block numbers
        self._next = 0  # where the next id's block number goes (the oldest when full)
        self._count = 0

    def first_time(self, result_id: str) -> bool:
        """``True`` the first time ``result_id`` is seen (within the last ``capacity`` ids)."""
        digest = _digest(result_id)
        number = int.from_bytes(digest[:2], "big") & self._mask
        block = self._blocks[number]
        if _holds(block, digest):
            return False
        if self._count == self._capacity:  # forget the oldest: the front of its block
            del self._blocks[self._order[self._next]][:DIGEST]
        else:
            self._count += 1
        block += digest
        self._order[self._next] = number
        self._next = (self._next + 1) % self._capacity
        return True

    def footprint(self) -> int:
        """Bytes held for the ids: the digests and the ring of block numbers."""
        return sum(len(block) for block in self._blocks) + self._order.itemsize * len(self._order)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, result_id: object) -> bool:
        if not isinstance(result_id, str):
            return False
        digest = _digest(result_id)
        return _holds(self._blocks[int.from_bytes(digest[:2], "big") & self._mask], digest)


def _holds(block: bytearray, digest: bytes) -> bool:
    at = block.find(digest)
    while at != -1:
        if at % DIGEST == 0:
            return True
        at = block.find(digest, at + 1)
    return False
