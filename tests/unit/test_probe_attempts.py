"""The attempt runner of probes/base.py: tenacity's retries shared by concurrent rounds, and a
coroutine resumed after its first step by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ctiwatch.clock import LoopClock, run_in_virtual_time
from probes.base import Attempt, ProbeContext, Resumed

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_concurrent_failed_rounds_each_get_their_own_retries_and_backoff() -> None:
    async def main() -> list[tuple[bool, int, float]]:
        clock = LoopClock()
        ctx = ProbeContext(clock, retries=2, retry_backoff=1.0)
        calls = {"down": 0, "flaky": 0}

        def once(name: str, ok_from: int) -> Attempt:
            calls[name] += 1
            return Attempt(calls[name] >= ok_from, 503, None, name, 0.0)

        async def round_of(name: str, ok_from: int) -> tuple[bool, int, float]:
            async def attempt() -> Attempt:
                return once(name, ok_from)

            last, count = await ctx.attempt(attempt)
            return last.ok, count, (clock.now() - START).total_seconds()

        return list(await asyncio.gather(round_of("down", 99), round_of("flaky", 2)))

    # down: 3 attempts, backoffs of 1 s and 2 s; flaky: good at its second attempt, after 1 s.
    assert run_in_virtual_time(START, main) == [(False, 3, 3.0), (True, 2, 1.0)]


def test_resumed_coroutine_ends_with_its_value_and_sees_the_tasks_cancellation() -> None:
    seen: list[str] = []

    async def work(gate: asyncio.Event) -> str:
        try:
            await gate.wait()
            return "answered"
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def stepped(gate: asyncio.Event) -> str:
        coroutine = work(gate)
        waiting = coroutine.send(None)  # runs up to its first wait, as the scheduler does
        return await Resumed[str](coroutine, waiting)

    async def main() -> tuple[str, bool]:
        opened = asyncio.Event()
        answered = asyncio.create_task(stepped(opened))
        stuck = asyncio.create_task(stepped(asyncio.Event()))
        await asyncio.sleep(1)
        opened.set()
        stuck.cancel()
        value = await answered
        try:
            await stuck
        except asyncio.CancelledError:
            return value, True
        return value, False

    assert run_in_virtual_time(START, main) == ("answered", True)
    assert seen == ["cancelled"]
