"""The probe scheduler: every target on the interval, spread out, never overlapping itself.

* Each target runs in its own task, so a slow target delays nobody else. Its rounds start at
  ``start + offset + k * interval``; the offset is a stable hash of the target's key (the same
  on every run, so load is spread the same way after a restart), or 0 with ``spread=False``,
  which ``simulate`` uses so that rounds start exactly every interval.
* A round still running when the target's next round is due makes that target skip the rounds
  it missed (counted in ``stats.skipped``); it never runs twice at once.
* ``concurrency`` bounds the probes in flight (a semaphore); ``deadline`` bounds one round,
  retries included (default: the context's worst case plus a second; ``math.inf`` turns the
  guard off), and a round past it is a failure.
* A result's ``at`` is its round's scheduled instant. Results go to ``on_results`` in batches
  (everything that finished in one turn of the event loop), in the order they finished.
* All time comes from the context's clock: in a ``VirtualTimeLoop`` the schedule, timeouts and
  backoffs run in virtual time.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from classifier.observation import ProbeResult, TargetKey
from probes.base import Probe, ProbeContext, ProbeTarget, Transport
from probes.registry import PROBES
from probes.targets import context_from_config, targets_from_config

__all__ = [
    "ResultSink",
    "Scheduler",
    "SchedulerStats",
    "context_from_config",
    "spread_offset",
    "targets_from_config",
]

ResultSink = Callable[[list[ProbeResult]], Awaitable[None] | None]


def spread_offset(key: TargetKey, interval: timedelta) -> timedelta:
    """A stable offset in ``[0, interval)`` from the key (not ``hash()``: that is salted)."""
    text = f"{key.service.value}/{key.customer}/{key.location}/{key.user}".encode()
    fraction = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest()) / 2**64
    return timedelta(microseconds=int(fraction * (interval // timedelta(microseconds=1))))


@dataclass(slots=True)
class SchedulerStats:
    rounds: int = 0  # rounds run (results delivered)
    skipped: int = 0  # rounds not run because the target's previous round was still running
    deadline_exceeded: int = 0
    probe_errors: int = 0  # a probe raised instead of returning a result (a bug)


class Scheduler:
    def __init__(
        self,
        targets: Sequence[ProbeTarget],
        transport: Transport,
        ctx: ProbeContext,
        *,
        interval: float | timedelta,
        on_results: ResultSink,
        concurrency: int = 100,
        spread: bool = True,
        deadline: float | None = None,
        probes: Mapping[str, Probe] = PROBES,
    ) -> None:
        self._interval = (
            interval if isinstance(interval, timedelta) else timedelta(seconds=interval)
        )
        if self._interval <= timedelta(0):
            raise ValueError("interval must be positive")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        unknown = sorted({t.kind for t in targets if t.kind not in probes})
        if unknown:
            raise ValueError(f"no probe for kind(s): {', '.join(unknown)}")
        self._plan = [(t, probes[t.kind]) for t in targets]
        self._transport = transport
        self._ctx = ctx
        self._clock = ctx.clock
        self._sink = on_results
        self._concurrency = concurrency
        self._spread = spread
        self._deadline = ctx.worst_case + 1.0 if deadline is None else deadline
        if self._deadline <= 0:
            raise ValueError("deadline must be positive")
        # An infinite deadline drops the guard (one timer less per round): the probes'
        # per-attempt timeouts and bounded retries already bound a round.
        self._guarded = math.isfinite(self._deadline)
        self.stats = SchedulerStats()
        self._pending: list[ProbeResult] = []
        self._running = False

    @property
    def interval(self) -> timedelta:
        return self._interval

    def offset(self, key: TargetKey) -> timedelta:
        return spread_offset(key, self._interval) if self._spread else timedelta(0)

    async def run(self, *, start: datetime | None = None, until: datetime | None = None) -> None:
        """Probe until ``until`` (rounds due before it run to the end) or until cancelled.

        An exception from ``on_results`` stops the run (raised inside an ``ExceptionGroup``):
        results are never dropped silently. One run at a time per scheduler.
        """
        if self._running:
            raise RuntimeError("this scheduler is already running")
        self._running = True
        origin: datetime = self._clock.now() if start is None else start
        wake = asyncio.Event()
        limit = asyncio.Semaphore(self._concurrency)
        done = False

        async def deliver() -> None:
            while True:
                await wake.wait()
                wake.clear()
                while self._pending:
                    batch, self._pending = self._pending, []
                    outcome = self._sink(batch)
                    if inspect.isawaitable(outcome):
                        await outcome
                if done:
                    return

        async def target_loop(target: ProbeTarget, probe: Probe) -> None:
            interval = self._interval
            clock = self._clock
            due = origin + self.offset(target.key)
            while until is None or due < until:
                await clock.sleep_until(due)
                async with limit:
                    result = await self._round(target, probe, due)
                self._pending.append(result)
                wake.set()
                due += interval
                now = clock.now()
                if due < now:  # the round overran: skip the rounds already missed
                    missed = -((due - now) // interval)
                    self.stats.skipped += missed
                    due += missed * interval

        try:
            async with asyncio.TaskGroup() as group:
                delivery = group.create_task(deliver())
                async with asyncio.TaskGroup() as loops:
                    for target, probe in self._plan:
                        loops.create_task(target_loop(target, probe))
                done = True
                wake.set()
                await delivery
        finally:
            self._pending = []
            self._running = False

    async def _round(self, target: ProbeTarget, probe: Probe, due: datetime) -> ProbeResult:
        stats = self.stats
        try:
            if self._guarded:
                async with asyncio.timeout(self._deadline):
                    result = await probe(target, self._transport, self._ctx)
            else:
                result = await probe(target, self._transport, self._ctx)
        except TimeoutError:
            stats.deadline_exceeded += 1
            result = self._failure(target, due, f"round deadline of {self._deadline:g} s exceeded")
        except Exception as exc:  # a probe bug must not stop the other targets
            stats.probe_errors += 1
            result = self._failure(target, due, f"probe error: {type(exc).__name__}: {exc}")
        stats.rounds += 1
        if result.at != due:
            result = replace(result, at=due)
        return result

    def _failure(self, target: ProbeTarget, due: datetime, evidence: str) -> ProbeResult:
        return ProbeResult(
            result_id=self._ctx.new_id(),
            target=target.key,
            at=due,
            ok=False,
            recognised=None,
            latency_ms=round((self._clock.now() - due).total_seconds() * 1000.0, 3),
            status=None,
            evidence=evidence,
        )
