"""Which of several ``ctiwatch run`` workers is the active monitor: a lease row, renewed by its
holder, fenced by a generation (see :mod:`ctiwatch.storage.leader`).

:class:`Leadership` runs in every worker on a PostgreSQL database. It tries to take the lease
every ``renew_every`` (it succeeds when the lease is free, has expired, or its holder is an
earlier life of this node whose process is gone) and, once it holds it, renews it as often.
Every time is the injected clock's. Leadership is lost when a renewal finds another holder or
generation, when a step of the monitor is refused by the fence (:meth:`fenced`), or when the
database cannot be reached for so long that the lease has run out by this worker's own clock (a
worker that cannot renew must assume another has taken over). The application hears of both
changes through :attr:`gained` / :attr:`lost` and :meth:`wait_change`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from ctiwatch.clock import Clock
from ctiwatch.storage.leader import MONITOR, Fence, LeaderRepository, Lease

log = logging.getLogger("ctiwatch.leadership")


class Leadership:
    """The lease of one worker (``holder``) on lease ``name``."""

    def __init__(
        self,
        leases: LeaderRepository,
        clock: Clock,
        holder: str,
        *,
        lease: timedelta = timedelta(seconds=15),
        renew_every: timedelta = timedelta(seconds=5),
        address: str = "",
        gone: Callable[[str], bool] | None = None,
        name: str = MONITOR,
    ) -> None:
        if renew_every * 2 > lease:
            raise ValueError("renew_every must be at most half of the lease")
        self._leases = leases
        self._clock = clock
        self.holder = holder
        self.duration = lease
        self.renew_every = renew_every
        self.address = address
        self._gone = gone
        self.name = name
        self.lease: Lease | None = None  # held by this worker
        self.changed = asyncio.Event()  # set at every gain and loss
        self.takeovers = 0  # times this worker became the leader
        self.last_error = ""

    @property
    def leading(self) -> bool:
        return self.lease is not None

    def fence(self) -> Fence | None:
        """What this worker's steps must check, while it leads."""
        lease = self.lease
        return None if lease is None else Fence(lease.name, lease.generation)

    async def current(self) -> Lease | None:
        """The lease as stored (whoever holds it)."""
        return await self._leases.get(self.name)

    async def try_once(self) -> bool:
        """Take or renew the lease once; whether this worker leads afterwards."""
        now = self._clock.now()
        held = self.lease
        try:
            if held is None:
                got = await self._leases.acquire(
                    self.holder,
                    now,
                    self.duration,
                    name=self.name,
                    address=self.address,
                    gone=self._gone,
                )
            else:
                got = await self._leases.renew(held, now, self.duration)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if held is not None and held.expires_at <= self._clock.now():
                self._lose("the lease ran out while the database could not be reached")
            else:
                log.warning("leader lease not renewed", extra={"error": self.last_error})
            return self.leading
        self.last_error = ""
        if got is None:
            if held is not None:
                self._lose("another worker holds the lease now")
            return False
        if held is None:
            self.lease = got
            self.takeovers += 1
            self.changed.set()
            log.warning(
                "this worker is the active monitor now",
                extra={"holder": self.holder, "generation": got.generation},
            )
        else:
            self.lease = got
        return True

    def fenced(self, why: str) -> None:
        """A step was refused by the fence: another worker leads."""
        if self.lease is not None:
            self._lose(why)

    def _lose(self, why: str) -> None:
        lease = self.lease
        self.lease = None
        self.changed.set()
        log.error(
            "this worker is no longer the active monitor",
            extra={
                "holder": self.holder,
                "generation": None if lease is None else lease.generation,
                "reason": why,
            },
        )

    async def wait_change(self) -> None:
        await self.changed.wait()
        self.changed.clear()

    async def run(self) -> None:
        """Forever: take or renew the lease every ``renew_every``."""
        while True:
            await self.try_once()
            await self._clock.sleep(self.renew_every.total_seconds())

    async def release(self) -> None:
        """A clean stop: give the lease up so another worker takes over at once."""
        lease = self.lease
        if lease is None:
            return
        self.lease = None
        self.changed.set()
        try:
            await self._leases.release(lease, self._clock.now())
        except Exception as exc:
            log.warning("leader lease not released", extra={"error": str(exc)})

    def expires_at(self) -> datetime | None:
        return None if self.lease is None else self.lease.expires_at
