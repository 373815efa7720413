"""The probe scheduler: every target on the interval, spread out, never overlapping itself.

* One dispatcher keeps every target's next instant in a heap and sleeps until the earliest
  (one timer for the whole schedule). The rounds due at an instant start in one task, one
  after the other, as long as they finish without waiting (an in-memory transport's answer:
  no task per round); a round that waits (for the network, a retry's backoff) keeps its task
  and concurrency slot and passes the rounds still due to a new task, so it delays nobody
  else. A task whose round is done goes on with rounds already due, keeping its slot.
  A target's rounds start at ``start + offset + k * interval``; the offset is a stable hash
  of the target's key (the same on every run, so load is spread the same way after a
  restart), or 0 with ``spread=False``, which ``simulate`` uses so that rounds start
  exactly every interval.
* A round still running when the target's next round is due makes that target skip the rounds
  it missed (counted in ``stats.skipped``); it never runs twice at once.
* ``concurrency`` bounds the probes in flight (rounds due while every slot is taken wait, in
  the order of their instants); ``deadline`` bounds one round, retries included (default: the
  context's worst case plus a second; ``math.inf`` turns the guard off), and a round past it
  is a failure. The registry's probes bound themselves within the context's worst case, so
  with a deadline at least that long they need no guard timer (``SELF_BOUNDED``).
* A result's ``at`` is its round's scheduled instant. Results go to ``on_results`` in batches,
  in the order they finished: the rounds of an instant that finished without waiting come in
  one batch; a round that waited comes in a batch when it ends.
* All time comes from the context's clock: in a ``VirtualTimeLoop`` the schedule, timeouts and
  backoffs run in virtual time.
* Several workers (``share``): before each round the scheduler asks ``share(target)`` whether
  the round is this worker's; a round that is another's is not run (counted in
  ``stats.elsewhere``) and the target's next round is scheduled as usual, so a target that
  moves to this worker is probed at its next instant. With ``aligned=True`` a target's rounds
  fall on the instants ``epoch + offset + k * interval`` (the first one at or after the start),
  the same on every worker: a target handed from one worker to another is probed once in the
  round of the hand-over, not twice or never.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from classifier.observation import ProbeResult, TargetKey
from probes.base import Probe, ProbeContext, ProbeTarget, Resumed, Transport
from probes.registry import PROBES, SELF_BOUNDED

__all__ = [
    "ResultSink",
    "Scheduler",
    "SchedulerStats",
    "spread_offset",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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
    elsewhere: int = 0  # rounds left to another worker (``share`` said they are not ours)


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
        share: Callable[[TargetKey], bool] | None = None,
        aligned: bool = False,
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
        chosen = [(t, probes[t.kind]) for t in targets]
        self._transport = transport
        self._ctx = ctx
        self._clock = ctx.clock
        self._sink = on_results
        self._concurrency = concurrency
        self._spread = spread
        self._share = share
        self._aligned = aligned
        self._deadline = ctx.worst_case + 1.0 if deadline is None else deadline
        if self._deadline <= 0:
            raise ValueError("deadline must be positive")
        # An infinite deadline drops the guard (one timer less per round): the probes'
        # per-attempt timeouts and bounded retries already bound a round.
        self._guarded = math.isfinite(self._deadline)
        # A round of a self-bounded probe ends within the context's worst case anyway: with a
        # deadline at least that long its guard would never fire, so it gets none (one timer
        # less per round). Any other probe, or a shorter deadline, keeps the guard.
        unguarded = self._deadline >= ctx.worst_case
        self._plan = [
            (t, p, self._guarded and not (unguarded and p in SELF_BOUNDED)) for t, p in chosen
        ]
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
        clock = self._clock
        interval = self._interval
        plan = self._plan
        origin: datetime = clock.now() if start is None else start
        # The rounds waiting for their instant: (due, index into the plan). A target is either
        # here or running, never both, so it never overlaps itself.
        queue = [
            (self._first_round(origin, target.key), index)
            for index, (target, _, _) in enumerate(plan)
        ]
        if until is not None:
            queue = [entry for entry in queue if entry[0] < until]
        heapq.heapify(queue)
        concurrency = self._concurrency
        stats = self.stats
        running = 0
        sleeper: asyncio.Task[None] | None = None  # the dispatcher's sleep, while it sleeps
        sleeping_until: datetime | None = None
        kick: asyncio.Future[None] | None = None  # the dispatcher's wait for a slot or a round
        waiting_for_slot = False
        bursting = False  # a task is running the rounds due now (the dispatcher leaves them)
        group_of_rounds: asyncio.TaskGroup | None = None
        wake = asyncio.Event()
        done = False
        loop = asyncio.get_running_loop()

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

        transport = self._transport
        ctx = self._ctx
        deadline = self._deadline
        share = self._share

        def on_wait(carrying: bool) -> None:
            # A round waits: the rounds due now go on in a new task, which carries the burst
            # on (and delivers what finished so far with its own results, in one batch). With
            # nothing due or no free slot, what finished is delivered now and the dispatcher
            # takes over.
            nonlocal running, bursting
            if queue and queue[0][0] <= clock.now() and running < concurrency:
                assert group_of_rounds is not None
                next_due, next_index = heapq.heappop(queue)
                running += 1
                bursting = True
                group_of_rounds.create_task(rounds_from(next_index, next_due))
                return
            if self._pending:
                wake.set()
            if carrying:
                bursting = False
            if kick is not None and not kick.done():
                kick.set_result(None)

        async def rounds_from(index: int, due: datetime) -> None:
            # Runs the round it was started for, then, keeping its slot, every round already due,
            # one after the other while they finish without waiting (an in-memory transport's
            # healthy answer: one task for a whole burst of rounds, not a task per round). A
            # round that waits (the network, a retry's backoff) passes the rounds still due to
            # a new task (``on_wait``) and goes on here. Results are delivered when the burst
            # ends or waits, so the rounds finished at one instant still come in one batch.
            nonlocal running, bursting
            carrying = True  # this task runs the burst the dispatcher left to it
            try:
                while True:
                    target, probe, guarded = plan[index]
                    if share is not None and not share(target.key):
                        stats.elsewhere += 1  # another worker's round
                    else:
                        waited = False
                        try:
                            steps = probe(target, transport, ctx).__await__()
                            if guarded:
                                async with asyncio.timeout(deadline):
                                    try:
                                        waiting = steps.send(None)
                                    except StopIteration as finished:
                                        result = finished.value
                                    else:
                                        waited = True
                                        on_wait(carrying)
                                        carrying = False
                                        result = await Resumed[ProbeResult](steps, waiting)
                            else:
                                try:
                                    waiting = steps.send(None)
                                except StopIteration as finished:
                                    result = finished.value
                                else:
                                    waited = True
                                    on_wait(carrying)
                                    carrying = False
                                    result = await Resumed[ProbeResult](steps, waiting)
                        except TimeoutError:
                            stats.deadline_exceeded += 1
                            result = self._failure(
                                target, due, f"round deadline of {deadline:g} s exceeded"
                            )
                        except Exception as exc:  # a probe bug must not stop the other targets
                            stats.probe_errors += 1
                            result = self._failure(
                                target, due, f"probe error: {type(exc).__name__}: {exc}"
                            )
                        stats.rounds += 1
                        # The fields spelled out: dataclasses.replace is slow.
                        if result.at != due:
                            r = result
                            result = ProbeResult(
                                r.result_id,
                                r.target,
                                due,
                                r.ok,
                                r.recognised,
                                r.latency_ms,
                                r.status,
                                r.evidence,
                                r.source,
                                r.attempts,
                                r.source_id,
                            )
                        self._pending.append(result)
                        if waited or not carrying:
                            wake.set()
                    due += interval
                    now = clock.now()
                    if due < now:  # the round overran: skip the rounds already missed
                        missed = -((due - now) // interval)
                        stats.skipped += missed
                        due += missed * interval
                    if until is None or due < until:
                        heapq.heappush(queue, (due, index))
                        if sleeping_until is not None and due < sleeping_until:
                            assert sleeper is not None
                            sleeper.cancel()  # an earlier instant than the one slept for
                        elif kick is not None and not waiting_for_slot and not kick.done():
                            kick.set_result(None)  # the dispatcher had nothing to wait for
                    if queue and queue[0][0] <= now:
                        due, index = heapq.heappop(queue)
                        continue
                    return
            finally:
                running -= 1
                if carrying:
                    bursting = False
                if self._pending:
                    wake.set()
                if kick is not None and not kick.done():
                    kick.set_result(None)

        async def dispatch(rounds: asyncio.TaskGroup) -> None:
            # One loop starts every round: one timer for the whole schedule instead of one per
            # target, and the concurrency limit is a counter, not a semaphore per round. Rounds
            # due at once start in one task (see ``rounds_from``), which passes them on.
            nonlocal running, sleeper, sleeping_until, kick, waiting_for_slot, bursting
            nonlocal group_of_rounds
            group_of_rounds = rounds
            reached: datetime | None = None  # the instant last slept until
            while queue or running:
                if not queue or running >= concurrency or bursting:
                    waiting_for_slot = bool(queue) or bursting  # a push need not wake it
                    kick = loop.create_future()
                    await kick
                    kick = None
                    continue
                due, index = queue[0]
                now = clock.now()
                if reached is not None and now < reached:
                    now = reached  # the clock's rounding must not make a sleep end early
                if due > now:
                    sleeping_until = due
                    sleeper = loop.create_task(clock.sleep_until(due))
                    try:
                        await sleeper
                        reached = due
                    except asyncio.CancelledError:
                        task = asyncio.current_task()
                        if task is not None and task.cancelling():
                            raise
                    finally:
                        sleeper = sleeping_until = None
                    continue
                heapq.heappop(queue)
                running += 1
                bursting = True
                rounds.create_task(rounds_from(index, due))

        try:
            async with asyncio.TaskGroup() as group:
                delivery = group.create_task(deliver())
                async with asyncio.TaskGroup() as rounds:
                    await dispatch(rounds)
                done = True
                wake.set()
                await delivery
        finally:
            self._pending = []
            self._running = False

    def _first_round(self, origin: datetime, key: TargetKey) -> datetime:
        """When a target's first round is due: ``origin`` plus its offset, or with ``aligned``
        the first instant of its grid (``epoch + offset + k * interval``) at or after
        ``origin``."""
        offset = self.offset(key)
        if not self._aligned:
            return origin + offset
        interval = self._interval
        phase = _EPOCH + offset
        rounds = -((phase - origin) // interval)  # ceil((origin - phase) / interval)
        return phase + rounds * interval

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
