"""The outbox: enqueue once per key, claim under a lease, mark; concurrent claimers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ctiwatch.storage import OutboxMessage, Store

T0 = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def message(key: str, *, not_before: datetime | None = None, channel: str = "sms") -> OutboxMessage:
    return OutboxMessage(
        idempotency_key=key,
        channel=channel,  # type: ignore[arg-type]
        recipient="+31612345678",
        kind="opened",
        body=f"message {key}",
        created_at=T0,
        not_before=not_before,
    )


async def test_enqueue_ignores_a_repeated_idempotency_key(store: Store) -> None:
    assert await store.outbox.enqueue(message("k1"))
    assert not await store.outbox.enqueue(message("k1"))
    assert [m.idempotency_key for m in await store.outbox.list()] == ["k1"]


async def test_claim_takes_due_pending_messages_oldest_first_and_leases_them(
    store: Store,
) -> None:
    await store.outbox.enqueue(message("later", not_before=T0 + timedelta(minutes=5)))
    await store.outbox.enqueue(message("first"))
    await store.outbox.enqueue(message("second"))

    lease = timedelta(minutes=10)
    claimed = await store.outbox.claim("worker-a", T0, lease, limit=10)
    assert [m.idempotency_key for m in claimed] == ["first", "second"]
    assert {(m.status, m.claimed_by, m.lease_until, m.attempts) for m in claimed} == {
        ("claimed", "worker-a", T0 + lease, 0)
    }
    # Nothing else is due until "later"; the leased ones are not claimable during the lease.
    assert await store.outbox.claim("worker-b", T0 + timedelta(minutes=4), LEASE) == []
    (later,) = await store.outbox.claim("worker-b", T0 + timedelta(minutes=5), LEASE)
    assert later.idempotency_key == "later"


async def test_an_expired_lease_is_claimable_again_and_sent_marks_it_done(store: Store) -> None:
    await store.outbox.enqueue(message("k1"))
    (first,) = await store.outbox.claim("worker-a", T0, LEASE)
    # worker-a dies before mark_sent; after the lease another worker sends it again.
    assert await store.outbox.claim("worker-b", T0 + LEASE - timedelta(seconds=1), LEASE) == []
    (again,) = await store.outbox.claim("worker-b", T0 + LEASE, LEASE)
    assert (again.id, again.idempotency_key, again.claimed_by) == (first.id, "k1", "worker-b")
    assert again.id is not None

    await store.outbox.mark_sent(again.id, "SM123", T0 + LEASE + timedelta(seconds=2))
    sent = await store.outbox.get(again.id)
    assert sent is not None
    assert (sent.status, sent.provider_id, sent.sent_at, sent.lease_until) == (
        "sent",
        "SM123",
        T0 + LEASE + timedelta(seconds=2),
        None,
    )
    assert await store.outbox.claim("worker-c", T0 + timedelta(hours=1), LEASE) == []
    # A late report from the worker that lost its lease does not undo "sent".
    await store.outbox.mark_retry(again.id, "timeout", T0 + timedelta(hours=2))
    await store.outbox.mark_failed(again.id, "timeout", T0 + timedelta(hours=2))
    after = await store.outbox.get(again.id)
    assert after is not None and after.status == "sent"


async def test_retry_puts_it_back_for_later_and_failed_is_final(store: Store) -> None:
    await store.outbox.enqueue(message("k1"))
    (claimed,) = await store.outbox.claim("worker-a", T0, LEASE)
    assert claimed.id is not None
    await store.outbox.mark_retry(claimed.id, "Twilio 503", T0 + timedelta(minutes=2))

    retried = await store.outbox.get(claimed.id)
    assert retried is not None
    assert (retried.status, retried.attempts, retried.last_error, retried.claimed_by) == (
        "pending",
        1,
        "Twilio 503",
        None,
    )
    assert await store.outbox.claim("worker-a", T0 + timedelta(minutes=1), LEASE) == []
    (again,) = await store.outbox.claim("worker-a", T0 + timedelta(minutes=2), LEASE)
    assert again.attempts == 1
    await store.outbox.mark_failed(claimed.id, "21211 invalid number", T0 + timedelta(minutes=3))

    failed = await store.outbox.get(claimed.id)
    assert failed is not None
    assert (failed.status, failed.attempts, failed.last_error, failed.failed_at) == (
        "failed",
        2,
        "21211 invalid number",
        T0 + timedelta(minutes=3),
    )
    assert await store.outbox.claim("worker-a", T0 + timedelta(days=1), LEASE) == []
    assert [m.status for m in await store.outbox.list(status="failed")] == ["failed"]


async def test_an_unknown_channel_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="channel 'pager' is not one of email, sms, voice"):
        await store.outbox.enqueue(message("k1", channel="pager"))


async def test_concurrent_claimers_never_get_the_same_message(store: Store) -> None:
    for i in range(40):
        await store.outbox.enqueue(message(f"k{i:02d}"))

    async def worker(name: str) -> list[str]:
        got: list[str] = []
        while batch := await store.outbox.claim(name, T0, LEASE, limit=3):
            got.extend(m.idempotency_key for m in batch)
        return got

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(5)))
    everything = [key for keys in results for key in keys]
    assert sorted(everything) == [f"k{i:02d}" for i in range(40)]  # each exactly once


# SKIP LOCKED is PostgreSQL's; on SQLite a second writer waits for the first to commit.
@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_claimer_skips_rows_locked_by_an_open_claim_on_postgres(
    store: Store, storage_url: str
) -> None:
    assert store.dialect == "postgresql"
    for i in range(5):
        await store.outbox.enqueue(message(f"k{i}"))

    async with store.transaction() as tx, Store.open(storage_url) as second_worker:
        held = await tx.outbox.claim("worker-a", T0, LEASE, limit=2)
        # worker-a's transaction is still open: its rows are locked, not yet committed.
        # worker-b (another process, here another engine) neither waits for them nor takes them.
        other = await asyncio.wait_for(
            second_worker.outbox.claim("worker-b", T0, LEASE, limit=10), 5
        )

    assert [m.idempotency_key for m in held] == ["k0", "k1"]
    assert [m.idempotency_key for m in other] == ["k2", "k3", "k4"]
    claimed_by = {m.idempotency_key: m.claimed_by for m in await store.outbox.list()}
    assert claimed_by == {
        "k0": "worker-a",
        "k1": "worker-a",
        "k2": "worker-b",
        "k3": "worker-b",
        "k4": "worker-b",
    }
