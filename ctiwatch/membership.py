"""Which targets this worker probes when several ``ctiwatch run`` workers share one database.

Every worker keeps a heartbeat row (:class:`~ctiwatch.storage.leader.MemberRepository`) and,
at every beat (``workers.renew_every``), reads which workers are alive: those whose heartbeat
has not run out (``workers.lease`` after their last beat; a clean stop removes its row at
once). Each target belongs to exactly one of them by **rendezvous hashing** (highest random
weight): every worker scores ``hash(worker, target)`` for every live worker and the highest
score owns the target. All workers that see the same members agree without talking, and when a
worker joins or dies only the targets it gains or held move: the others keep theirs.

So the central prober takes one round per target per interval whatever the number of workers
(the scheduler puts every worker's rounds on the same instants, see
``probes.scheduler.Scheduler(aligned=True)``). A worker that dies leaves its targets unprobed
until its heartbeat has run out and the others have read the members again: at most
``lease + renew_every`` (20 s by default), plus the interval to the next round. A worker that
cannot read the members for longer than the lease probes every target: a target probed twice
for a while is better than one nobody probes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from classifier.observation import TargetKey
from ctiwatch.clock import Clock
from ctiwatch.storage.leader import MemberRepository

log = logging.getLogger("ctiwatch.membership")


def target_text(key: TargetKey) -> str:
    return f"{key.service.value}/{key.customer}/{key.location}/{key.user}"


def _score(member: str, target: str) -> int:
    # blake2b, not hash(): the score must be the same in every process (hash() is salted).
    digest = hashlib.blake2b(f"{member}\n{target}".encode(), digest_size=8).digest()
    return int.from_bytes(digest)


def owner(key: TargetKey, members: Sequence[str]) -> str:
    """The member that probes ``key``: the highest rendezvous score (ties by name)."""
    if not members:
        raise ValueError("no member to own a target")
    text = target_text(key)
    return max(members, key=lambda member: (_score(member, text), member))


def shares(keys: Iterable[TargetKey], members: Sequence[str]) -> dict[str, list[TargetKey]]:
    """Every member's targets (a member may have none)."""
    found: dict[str, list[TargetKey]] = {member: [] for member in members}
    for key in keys:
        found[owner(key, members)].append(key)
    return found


class Membership:
    """This worker's heartbeat and its share of ``targets``.

    :meth:`mine` is what the scheduler asks before each round; it answers from the members
    read at the last beat (before the first beat: everything is this worker's)."""

    def __init__(
        self,
        members: MemberRepository,
        clock: Clock,
        holder: str,
        targets: Iterable[TargetKey],
        *,
        lease: timedelta = timedelta(seconds=15),
        renew_every: timedelta = timedelta(seconds=5),
        address: str = "",
        gone: Callable[[str], bool] | None = None,
    ) -> None:
        if renew_every * 2 > lease:
            raise ValueError("renew_every must be at most half of the lease")
        self._repo = members
        self._clock = clock
        self.holder = holder
        self._targets = list(dict.fromkeys(targets))
        self.lease = lease
        self.renew_every = renew_every
        self.address = address
        self._gone = gone
        self.members: tuple[str, ...] = (holder,)
        self._mine: frozenset[TargetKey] = frozenset(self._targets)
        self.read_at: datetime | None = None  # when the members were last read
        self.last_error = ""
        self.changes = 0  # times this worker's share changed

    def mine(self, key: TargetKey) -> bool:
        return key in self._mine

    @property
    def share(self) -> int:
        """How many targets this worker probes now."""
        return len(self._mine)

    async def beat(self) -> None:
        """Renew the heartbeat and read the live members again; on failure keep the last
        view, or probe everything once that view is older than the lease."""
        now = self._clock.now()
        try:
            await self._repo.beat(
                self.holder,
                now,
                self.lease,
                address=self.address,
                forget_before=now - self.lease * 4,
            )
            alive = await self._repo.alive(now)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            read_at = self.read_at
            if read_at is not None and now - read_at >= self.lease and len(self.members) > 1:
                log.warning(
                    "the other workers cannot be read; probing every target meanwhile",
                    extra={"error": self.last_error},
                )
                self._use((self.holder,))
            else:
                log.warning("worker heartbeat not stored", extra={"error": self.last_error})
            return
        self.last_error = ""
        self.read_at = now
        gone = self._gone
        holders = {m.holder for m in alive if gone is None or not gone(m.holder)}
        holders.add(self.holder)
        self._use(tuple(sorted(holders)))

    def _use(self, members: tuple[str, ...]) -> None:
        if members == self.members:
            return
        self.members = members
        mine = frozenset(k for k in self._targets if owner(k, members) == self.holder)
        if mine != self._mine:
            self._mine = mine
            self.changes += 1
        log.info(
            "probing %d of %d targets (%d workers)",
            len(mine),
            len(self._targets),
            len(members),
            extra={"workers": list(members), "probing": len(mine), "targets": len(self._targets)},
        )

    async def run(self) -> None:
        """Forever: beat every ``renew_every``."""
        while True:
            await self.beat()
            await self._clock.sleep(self.renew_every.total_seconds())

    async def leave(self) -> None:
        """A clean stop: the heartbeat row goes, the others take this worker's share at once."""
        try:
            await self._repo.leave(self.holder)
        except Exception as exc:
            log.warning("worker heartbeat not removed", extra={"error": str(exc)})
