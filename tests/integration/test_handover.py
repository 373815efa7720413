"""Any worker takes people's actions: a worker that is not the active monitor hands the action
to the one that is, through the database, and answers with its result; on a fixed clock and a
real PostgreSQL database, two workers (each its own store, lease, pipeline and console) in one
process.

Applied once by the active monitor (audited with the real actor and source address, one
timeline entry), refused with the active monitor's own words, withdrawn and answered 503 with
Retry-After when no monitor takes it in time (and then never applied), and applied by the next
active monitor when the one that read it had lost the lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ctiwatch.app import restore_monitor
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config
from ctiwatch.console import ConsoleServiceImpl
from ctiwatch.handover import RETRY_AFTER, Handovers
from ctiwatch.leadership import Leadership
from ctiwatch.persist import Pipeline
from ctiwatch.storage import Store, is_transient
from ctiwatch.web.service import ServiceError

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday, inside support hours
LEASE = timedelta(seconds=15)
RENEW = timedelta(seconds=5)
PATIENT = timedelta(hours=1)  # the follower waits longer than any test runs


@dataclass
class Worker:
    store: Store
    leadership: Leadership
    pipeline: Pipeline
    console: ConsoleServiceImpl
    handovers: Handovers


def config(url: str) -> Config:
    return Config.model_validate(
        {
            "topology": {
                "customers": [
                    {
                        "id": "acme",
                        "name": "ACME B.V.",
                        "locations": [{"id": "acme-ams", "users": ["alice"]}],
                    },
                ]
            },
            "storage": {"url": url},
        }
    )


async def open_worker(
    stack: AsyncExitStack, url: str, clock: FixedClock, name: str, wait: timedelta
) -> Worker:
    store = await stack.enter_async_context(Store.open(url))
    leadership = Leadership(store.leader, clock, name, lease=LEASE, renew_every=RENEW)
    await leadership.try_once()
    monitor = await restore_monitor(config(url), store, clock)
    pipeline = Pipeline(monitor, store, clock, leadership=leadership, transient=is_transient)
    handovers = Handovers(store, clock, leadership, wait=wait)
    console = ConsoleServiceImpl(config(url), pipeline, handovers=handovers)
    return Worker(store, leadership, pipeline, console, handovers)


@pytest.fixture
async def url(pg_database_factory: object) -> str:
    return await pg_database_factory()  # type: ignore[operator,no-any-return]


@pytest.fixture
async def pair(url: str) -> AsyncIterator[tuple[Worker, Worker, FixedClock]]:
    """The active monitor (the first to take the lease) and a follower, with one open question
    (incident 1) opened on the active monitor."""
    clock = FixedClock(T0)
    async with AsyncExitStack() as stack:
        leader = await open_worker(stack, url, clock, "node-a/1/aaa", PATIENT)
        follower = await open_worker(stack, url, clock, "node-b/2/bbb", PATIENT)
        assert leader.leadership.leading and not follower.leadership.leading
        assert await leader.console.open_question("acme", "alice", "is the CRM slow?") == 1
        await follower.pipeline.reload()
        yield leader, follower, clock


async def serving(worker: Worker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.handovers.serve(worker.console.apply_handover))


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_ack_taken_in_by_a_follower_is_applied_once_by_the_active_monitor_and_audited(
    pair: tuple[Worker, Worker, FixedClock],
) -> None:
    leader, follower, _ = pair
    task = await serving(leader)
    try:
        await follower.console.acknowledge(1, "bob", address="198.51.100.7")
        # Again through the follower: the active monitor's refusal, in its words.
        with pytest.raises(ServiceError) as again:
            await follower.console.acknowledge(1, "bob", address="198.51.100.7")
        # A question opened through the follower: the number the active monitor gave it.
        assert await follower.console.open_question("acme", "carol", "and the calls?") == 2
    finally:
        await stop(task)
    assert (again.value.status, again.value.message) == (409, "incident 1 is already acknowledged")

    store = leader.store
    stored = await store.incidents.get(1)
    assert stored is not None and stored.acknowledged_at is not None
    acks = [e for e in await store.incidents.timeline(1) if e.kind == "acknowledged"]
    assert [(e.actor, e.at) for e in acks] == [("bob", stored.acknowledged_at)]
    audit = [(a.actor, a.action, a.target, a.address) for a in await store.accounts.audit_log()]
    assert audit == [
        ("carol", "incident.question", "incident 2", ""),
        ("bob", "incident.ack", "incident 1", "198.51.100.7"),
        ("alice", "incident.question", "incident 1", ""),
    ]
    # The follower's own pages show what it did at once.
    detail = await follower.console.incident(1)
    assert detail is not None and detail.summary.status == "acknowledged"
    rows = [await store.handovers.get(n) for n in (1, 2, 3)]
    assert [(r.kind, r.status, r.result) for r in rows if r is not None] == [
        ("acknowledge", "done", {"incidents": [1]}),
        (
            "acknowledge",
            "done",
            {
                "error": {
                    "message": "incident 1 is already acknowledged",
                    "field": None,
                    "status": 409,
                }
            },
        ),
        ("open_question", "done", {"incidents": [2]}),
    ]


async def test_an_action_no_monitor_takes_in_time_is_withdrawn_answered_503_and_never_applied(
    url: str,
) -> None:
    clock = FixedClock(T0)
    async with AsyncExitStack() as stack:
        leader = await open_worker(stack, url, clock, "node-a/1/aaa", PATIENT)
        assert await leader.console.open_question("acme", "alice", "is the CRM slow?") == 1
        impatient = await open_worker(stack, url, clock, "node-b/2/bbb", timedelta(seconds=2))
        assert not impatient.leadership.leading

        # The active monitor is not looking (a takeover in progress): the person waits 2 s.
        with pytest.raises(ServiceError) as caught:
            await impatient.console.acknowledge(1, "bob", address="198.51.100.7")
        assert caught.value.status == 503 and caught.value.retry_after == RETRY_AFTER
        assert "no worker is the active monitor" in caught.value.message
        row = await leader.store.handovers.get(1)
        assert row is not None and row.status == "withdrawn"

        # The active monitor comes back: it finds nothing to do, and applying the withdrawn
        # action anyway (it had read it just before) stores nothing.
        assert await leader.store.handovers.pending(clock.now()) == []
        await leader.console.apply_handover(row)
    async with Store.open(url) as store:  # the workers' stores are closed: one more
        stored = await store.incidents.get(1)
        timeline = await store.incidents.timeline(1)
        audit = await store.accounts.audit_log()
        again = await store.handovers.get(1)
    assert stored is not None and stored.acknowledged_at is None
    assert [e.kind for e in timeline if e.kind == "acknowledged"] == []
    assert [a.action for a in audit] == ["incident.question"]
    assert again is not None and (again.status, again.result) == ("withdrawn", None)


async def test_a_handover_the_deposed_leader_could_not_apply_is_applied_by_the_next_once(
    pair: tuple[Worker, Worker, FixedClock],
) -> None:
    leader, follower, clock = pair
    waiting = asyncio.create_task(follower.console.acknowledge(1, "bob", address="192.0.2.9"))
    # The follower writes it (real I/O).
    while not (pending := await leader.store.handovers.pending(clock.now())):  # noqa: ASYNC110
        await asyncio.sleep(0)
    [handover] = pending

    # The leader pauses past its lease; the follower takes over; the old leader wakes up with
    # the handover it had read and tries to apply it: fenced, nothing stored, still pending.
    clock.advance(LEASE + RENEW)
    assert await follower.leadership.try_once()
    await leader.console.apply_handover(handover)
    row = await leader.store.handovers.get(handover.id)
    assert row is not None and row.status == "pending"

    # The new active monitor applies it (it reloads the state first, as a takeover does).
    await follower.pipeline.reload()
    task = await serving(follower)
    try:
        await waiting
    finally:
        await stop(task)
    store = follower.store
    acks = [e for e in await store.incidents.timeline(1) if e.kind == "acknowledged"]
    assert [e.actor for e in acks] == ["bob"]
    audit = [(a.actor, a.action, a.address) for a in await store.accounts.audit_log()]
    assert audit[0] == ("bob", "incident.ack", "192.0.2.9") and len(audit) == 2
    done = await store.handovers.get(handover.id)
    assert done is not None and done.status == "done"
    assert done.done_by == "node-b/2/bbb"
