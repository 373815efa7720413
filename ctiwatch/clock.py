"""Clocks: the only place in ctiwatch that knows what time it is.

Everything else receives a :class:`Clock` (services) or a ``now`` argument (pure code). The
protocol itself is :class:`sla.clock.Clock` (re-exported here), so that the core packages can
name it without importing the shell.

Two implementations:

* :class:`RealClock` reads the wall clock and sleeps for real.
* :class:`LoopClock` reads the running event loop's clock.  Run inside a
  :class:`VirtualTimeLoop`, whose time is virtual POSIX seconds, every ``asyncio.sleep``,
  ``asyncio.timeout`` and ``call_later`` jumps straight to the next due timer instead of waiting.
  That is how ``ctiwatch simulate`` runs 36 hours in seconds and how tests pin every instant
  without sleeping.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sla.clock import Clock as Clock

T = TypeVar("T")


class RealClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, when: datetime) -> None:
        await self.sleep((when - self.now()).total_seconds())


class LoopClock:
    """The running event loop's clock, read as POSIX seconds.

    Meaningful inside a :class:`VirtualTimeLoop`, whose ``time()`` is virtual POSIX time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def _current_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop if self._loop is not None else asyncio.get_running_loop()

    def now(self) -> datetime:
        # Round to the microsecond: float POSIX seconds carry ~1e-7 s of noise.
        return datetime.fromtimestamp(round(self._current_loop().time(), 6), UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, when: datetime) -> None:
        await self.sleep((when - self.now()).total_seconds())


class FixedClock:
    """A clock that moves only when told to; for pure unit tests that never await."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    async def sleep(self, seconds: float) -> None:
        self._now += timedelta(seconds=max(0.0, seconds))
        await asyncio.sleep(0)

    async def sleep_until(self, when: datetime) -> None:
        if when > self._now:
            self._now = when.astimezone(UTC)
        await asyncio.sleep(0)


class _VirtualSelector(selectors.BaseSelector):
    """Wraps a real selector; where the loop would block for ``timeout``, time jumps instead."""

    def __init__(self, loop_time: Callable[[float], None]) -> None:
        self._inner = selectors.DefaultSelector()
        self._advance = loop_time

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Nothing is scheduled: only real I/O (a thread's result, a signal) can wake us.
            return self._inner.select(None)
        self._advance(timeout)
        return []

    def close(self) -> None:
        self._inner.close()

    def get_map(self) -> Any:
        return self._inner.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is virtual POSIX seconds starting at ``start``.

    When every task waits on a timer, the loop jumps to the earliest one. Real I/O still
    works (it is polled first), but work in threads costs no virtual time and is not
    waited for before time jumps, so code run here must not depend on threads.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualTimeLoop needs a timezone-aware start")
        self._virtual_time = start.timestamp()
        super().__init__(selector=_VirtualSelector(self._advance))
        # asyncio runs a timer when ``when < time() + resolution``; around 1.8e9 s a float
        # steps by 2.4e-7 s, so the default 1e-9 would leave a timer landing exactly on the
        # jumped-to time unfired for ever.
        self._clock_resolution = 1e-6

    def _advance(self, seconds: float) -> None:
        self._virtual_time += max(0.0, seconds)

    def time(self) -> float:
        return self._virtual_time


def run_in_virtual_time(start: datetime, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` to completion on a fresh :class:`VirtualTimeLoop` starting at ``start``."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start)) as runner:
        return runner.run(main())


async def wait_for_clock(clock: Clock, awaitable: Awaitable[T], seconds: float) -> T:
    """``asyncio.wait_for`` that reads as a clock operation at call sites."""
    return await asyncio.wait_for(awaitable, timeout=seconds)
