"""The outbox as the sender sees it: rows to send, claimed under a lease, marked afterwards.

The storage layer implements :class:`OutboxStore` on its table (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL); :class:`MemoryOutbox` is the same contract in memory, for tests and ``simulate``.
An incident event and its outbox rows are written in one transaction by the shell; the sender
only claims, sends and marks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from alerting.model import OutgoingMessage


class OutboxMessage(Protocol):
    """One row to send (read-only view; a storage row or :class:`PendingMessage`)."""

    @property
    def id(self) -> int | None: ...  # always set on a claimed row
    @property
    def idempotency_key(self) -> str: ...
    @property
    def incident_number(self) -> int | None: ...
    @property
    def channel(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def attempts(self) -> int: ...


class OutboxStore(Protocol):
    # Positional-only: implementations may name the parameters their own way.
    async def claim(
        self, worker: str, now: datetime, lease: timedelta, limit: int, /
    ) -> Sequence[OutboxMessage]:
        """Up to ``limit`` due rows nobody holds, leased to ``worker`` until ``now + lease``."""
        ...

    async def mark_sent(self, id: int, provider_id: str | None, now: datetime, /) -> None: ...

    async def mark_retry(self, id: int, error: str, not_before: datetime, /) -> None:
        """Release the lease; try again from ``not_before``; counts one failed attempt."""
        ...

    async def mark_failed(self, id: int, error: str, now: datetime, /) -> None: ...

    async def claimants(self) -> Sequence[str]:
        """The workers that hold claimed rows, whether their leases still run or not."""
        ...

    async def release(self, workers: Sequence[str], /) -> int:
        """The rows claimed by ``workers`` are pending again at once (not a failed attempt);
        returns how many."""
        ...


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """Who claims outbox rows: ``node/pid/life``, one per process start.

    ``node`` is what stays the same when the process is restarted (the host name, or a name
    given in the configuration); ``pid`` and ``life`` (random, per start) tell its lives apart.
    :func:`alerting.sender.this_process` makes the identity of the running process.
    At start a sender frees the rows an earlier life of its node left claimed
    (:meth:`left_by_earlier_life`) instead of waiting for their leases to run out. Two processes
    on one node are told apart by their pids: a claim whose process still runs is left alone.
    """

    node: str
    pid: int
    life: str

    @classmethod
    def parse(cls, text: str) -> WorkerIdentity | None:
        """The identity written as ``text``, or ``None`` for a name in another form."""
        parts = text.rsplit("/", 2)
        if len(parts) != 3 or not all(parts) or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    def __str__(self) -> str:
        return f"{self.node}/{self.pid}/{self.life}"

    def left_by_earlier_life(self, claimant: str, alive: Callable[[int], bool]) -> bool:
        """Whether ``claimant`` is an earlier life of this node, now gone: the same node, not
        this life, and its process no longer running (or its pid is this process's own: a
        container whose every start is pid 1)."""
        other = WorkerIdentity.parse(claimant)
        if other is None or other.node != self.node or other.life == self.life:
            return False
        return other.pid == self.pid or not alive(other.pid)


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A plain :class:`OutboxMessage`."""

    id: int | None
    idempotency_key: str
    incident_number: int | None
    channel: str
    recipient: str
    kind: str
    subject: str
    body: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 0


def outbox_fields(message: OutgoingMessage) -> dict[str, Any]:
    """The column values of the outbox row for a routed message (everything but ``id``)."""
    return {
        "idempotency_key": message.idempotency_key,
        "incident_number": message.incident,
        "channel": message.channel,
        "recipient": message.to,
        "kind": message.kind,
        "subject": message.subject,
        "body": message.text,
        "payload": dict(message.payload),
        "created_at": message.at,
    }


@dataclass(slots=True)
class _Row:
    message: PendingMessage
    status: str = "pending"  # pending | sent | failed
    not_before: datetime | None = None
    leased_to: str | None = None
    lease_until: datetime | None = None
    provider_id: str | None = None
    error: str = ""
    done_at: datetime | None = None


class MemoryOutbox:
    """:class:`OutboxStore` in memory; ``add`` ignores a repeated idempotency key."""

    def __init__(self) -> None:
        self._rows: dict[int, _Row] = {}
        self._keys: dict[str, int] = {}

    def add(self, message: OutgoingMessage) -> int:
        if message.idempotency_key in self._keys:
            return self._keys[message.idempotency_key]
        ident = len(self._rows) + 1
        fields = outbox_fields(message)
        fields.pop("created_at")
        self._rows[ident] = _Row(PendingMessage(id=ident, **fields))
        self._keys[message.idempotency_key] = ident
        return ident

    def row(self, ident: int) -> _Row:
        return self._rows[ident]

    @property
    def rows(self) -> list[_Row]:
        return list(self._rows.values())

    async def claim(
        self, worker: str, now: datetime, lease: timedelta, limit: int
    ) -> list[OutboxMessage]:
        claimed: list[OutboxMessage] = []
        for row in self._rows.values():
            if len(claimed) >= limit:
                break
            if row.status != "pending" or (row.not_before and row.not_before > now):
                continue
            if row.lease_until is not None and row.lease_until > now:
                continue
            row.leased_to, row.lease_until = worker, now + lease
            claimed.append(row.message)
        return claimed

    async def mark_sent(self, id: int, provider_id: str | None, now: datetime) -> None:
        row = self._rows[id]
        row.status, row.provider_id, row.done_at = "sent", provider_id, now
        row.leased_to = row.lease_until = None

    async def mark_retry(self, id: int, error: str, not_before: datetime) -> None:
        row = self._rows[id]
        row.message = replace(row.message, attempts=row.message.attempts + 1)
        row.error, row.not_before = error, not_before
        row.leased_to = row.lease_until = None

    async def mark_failed(self, id: int, error: str, now: datetime) -> None:
        row = self._rows[id]
        row.status, row.error, row.done_at = "failed", error, now
        row.leased_to = row.lease_until = None

    async def claimants(self) -> list[str]:
        return sorted({r.leased_to for r in self._rows.values() if r.leased_to is not None})

    async def release(self, workers: Sequence[str]) -> int:
        freed = 0
        for row in self._rows.values():
            if row.status == "pending" and row.leased_to in workers:
                row.leased_to = row.lease_until = None
                freed += 1
        return freed
