"""The agent's on-disk buffer: every result is written here first, published from here.

An append-only queue in SQLite (stdlib ``sqlite3`` on one thread of its own, so the event loop
never blocks on the disk). Rows leave only when the broker has acknowledged the message that
carried them (PUBACK), so a broker outage, a crash or a restart of the agent loses nothing; a
crash between PUBACK and delete sends those results again, which the central dedup absorbs.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

log = logging.getLogger("ctiwatch.mqtt.buffer")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Buffered:
    seq: int
    payload: bytes  # one result, as encoded by ``schema.encode_result``


class ResultBuffer:
    """``async with ResultBuffer.open(path) as buffer: ...``"""

    def __init__(self, path: Path, max_rows: int | None) -> None:
        self._path = path
        self._max_rows = max_rows
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctiwatch-buffer")
        self._db: sqlite3.Connection | None = None
        self._count = 0
        self.dropped = 0

    @classmethod
    async def open(cls, path: str | Path, *, max_rows: int | None = None) -> ResultBuffer:
        """Open (or create) the buffer at ``path``; ``max_rows`` bounds it (oldest dropped)."""
        buffer = cls(Path(path), max_rows)
        try:
            await buffer._run(buffer._connect)
        except BaseException:
            buffer._executor.shutdown(wait=False)
            raise
        return buffer

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._executor.shutdown(wait=True)

    def __len__(self) -> int:
        """How many results wait to be published."""
        return self._count

    async def append(self, payloads: Sequence[bytes]) -> None:
        """Keep ``payloads`` (in this order, after everything already kept)."""
        if payloads:
            await self._run(lambda: self._append(payloads))

    async def peek(self, limit: int) -> list[Buffered]:
        """The oldest ``limit`` results, oldest first; they stay until :meth:`delete_through`."""
        return await self._run(lambda: self._peek(limit))

    async def delete_through(self, seq: int) -> None:
        """Forget every result up to and including ``seq`` (they were acknowledged)."""
        await self._run(lambda: self._delete_through(seq))

    # --- on the buffer's own thread ----------------------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _connect(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # WAL + NORMAL: a committed append survives a crash of the agent (not necessarily a
        # power cut of its machine), at a fraction of the cost of a full fsync per batch.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS pending_results ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL)"
        )
        self._count = db.execute("SELECT count(*) FROM pending_results").fetchone()[0]
        self._db = db

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the result buffer is closed")
        return self._db

    def _append(self, payloads: Sequence[bytes]) -> None:
        db = self._conn()
        excess = 0
        if self._max_rows is not None:
            excess = max(0, self._count + len(payloads) - self._max_rows)
        with db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO pending_results (payload) VALUES (?)", [(p,) for p in payloads]
            )
            if excess:
                db.execute(
                    "DELETE FROM pending_results WHERE seq IN"
                    " (SELECT seq FROM pending_results ORDER BY seq LIMIT ?)",
                    (excess,),
                )
        self._count += len(payloads) - excess
        if excess:
            self.dropped += excess
            log.warning(
                "agent buffer full: oldest results dropped",
                extra={"dropped": excess, "max_rows": self._max_rows},
            )

    def _peek(self, limit: int) -> list[Buffered]:
        rows = self._conn().execute(
            "SELECT seq, payload FROM pending_results ORDER BY seq LIMIT ?", (limit,)
        )
        return [Buffered(seq, bytes(payload)) for seq, payload in rows]

    def _delete_through(self, seq: int) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            deleted = db.execute("DELETE FROM pending_results WHERE seq <= ?", (seq,)).rowcount
        self._count -= deleted
