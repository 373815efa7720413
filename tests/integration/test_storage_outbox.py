"""The outbox: enqueue once per key, claim under a lease, mark; concurrent claimers; lookup by
the provider's id; retention of delivered messages."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ctiwatch.storage import IncidentRecord, OutboxMessage, Store, TimelineEntry
from sla.priority import Priority

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


async def test_by_provider_id_finds_the_message_twilio_reports_on(store: Store) -> None:
    for key in ("k1", "k2", "k3"):
        await store.outbox.enqueue(message(key))
    claimed = {m.idempotency_key: m.id for m in await store.outbox.claim("w", T0, LEASE)}
    await store.outbox.mark_sent(claimed["k1"] or 0, "SM111", T0 + timedelta(seconds=1))
    await store.outbox.mark_sent(claimed["k2"] or 0, "CA222", T0 + timedelta(seconds=2))

    found = await store.outbox.by_provider_id("CA222")
    assert found is not None
    assert (found.id, found.idempotency_key, found.status, found.provider_id) == (
        claimed["k2"],
        "k2",
        "sent",
        "CA222",
    )
    assert await store.outbox.by_provider_id("SM999") is None
    assert await store.outbox.by_provider_id("sm111") is None  # SIDs are case-sensitive


# Retention: now, and the 90-day cutoff it gives.
NOW = datetime(2027, 3, 4, 14, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(days=90)
LONG_AGO = NOW - timedelta(days=400)


def stored(key: str, status: str, **times: datetime | None) -> OutboxMessage:
    """A message as the sender leaves it, created long ago."""
    return replace(
        message(key),
        created_at=LONG_AGO,
        not_before=LONG_AGO,
        status=status,  # type: ignore[arg-type]
        claimed_by=None if status == "pending" else "w",
        **times,  # type: ignore[arg-type]
    )


async def test_retention_deletes_exactly_the_old_sent_and_failed_messages(store: Store) -> None:
    just_before = CUTOFF - timedelta(microseconds=1)
    for m in [
        stored("sent-old", "sent", sent_at=just_before),
        stored("sent-at-cutoff", "sent", sent_at=CUTOFF),
        stored("sent-recent", "sent", sent_at=NOW - timedelta(days=1)),
        stored("failed-old", "failed", failed_at=CUTOFF - timedelta(days=1)),
        stored("failed-recent", "failed", failed_at=CUTOFF + timedelta(hours=1)),
        stored("failed-untimed-old", "failed"),  # no failed_at: created_at counts
        stored("pending-old", "pending"),
        stored("claimed-old", "claimed", lease_until=LONG_AGO + LEASE),
        replace(message("pending-new"), created_at=NOW, not_before=NOW),
    ]:
        assert await store.outbox.enqueue(m)

    deleted = await store.apply_retention(NOW, outbox=timedelta(days=90))

    assert deleted["outbox"] == 3
    kept = sorted(m.idempotency_key for m in await store.outbox.list())
    assert kept == [
        "claimed-old",
        "failed-recent",
        "pending-new",
        "pending-old",
        "sent-at-cutoff",
        "sent-recent",
    ]
    assert (await store.apply_retention(NOW))["outbox"] == 0  # the default is 90 days too
    # The old pending and claimed messages are still there to be sent.
    assert [m.idempotency_key for m in await store.outbox.claim("w2", NOW, LEASE)] == [
        "pending-old",
        "claimed-old",
        "pending-new",
    ]


async def test_retention_keeps_incidents_and_timelines_when_their_messages_go(
    store: Store,
) -> None:
    opened = LONG_AGO
    async with store.transaction() as tx:
        number = await tx.incidents.next_number()
        await tx.incidents.save(
            IncidentRecord(
                number=number,
                customer="acme",
                automatic=True,
                priority=Priority.CRITICAL,
                status="resolved",
                title="Click2Dial unavailable at acme-ams",
                opened_at=opened,
                updated_at=opened + timedelta(hours=2),
                resolved_at=opened + timedelta(hours=2),
                resolved_by="auto",
            )
        )
        await tx.timeline.add(TimelineEntry(number, opened, "opened", "3 failed rounds"))
        await tx.outbox.enqueue(
            replace(
                stored("inc-opened-sms", "sent", sent_at=opened + timedelta(seconds=5)),
                incident_number=number,
            )
        )

    deleted = await store.apply_retention(NOW, outbox=timedelta(days=90))

    assert deleted["outbox"] == 1
    assert await store.outbox.list(incident_number=number) == []
    incident = await store.incidents.get(number)
    assert incident is not None and incident.status == "resolved"
    assert [e.kind for e in await store.incidents.timeline(number)] == ["opened"]


async def test_release_frees_the_rows_of_the_named_claimants_only_at_once_without_an_attempt(
    store: Store,
) -> None:
    for key in ("a1", "a2", "b1", "sent"):
        await store.outbox.enqueue(message(key))
    lease = timedelta(hours=1)
    await store.outbox.claim("node-a/101/dead", T0, lease, limit=2)  # a1, a2
    await store.outbox.claim("node-b/202/live", T0, lease, limit=1)  # b1
    (done,) = await store.outbox.claim("node-a/101/dead", T0, lease, limit=1)
    await store.outbox.mark_sent(done.id or 0, "SM1", T0)

    assert await store.outbox.claimants() == ["node-a/101/dead", "node-b/202/live"]
    assert await store.outbox.release(["node-a/101/dead"]) == 2
    assert await store.outbox.release([]) == 0

    rows = {m.idempotency_key: m for m in await store.outbox.list()}
    assert {k: (m.status, m.claimed_by, m.lease_until, m.attempts) for k, m in rows.items()} == {
        "a1": ("pending", None, None, 0),
        "a2": ("pending", None, None, 0),
        "b1": ("claimed", "node-b/202/live", T0 + lease, 0),
        "sent": ("sent", "node-a/101/dead", None, 0),
    }
    # Claimable again at once, long before the dead worker's lease would have run out.
    again = await store.outbox.claim("node-a/303/new", T0 + timedelta(seconds=1), lease)
    assert [m.idempotency_key for m in again] == ["a1", "a2"]


async def test_an_error_with_a_nul_is_stored_without_it(store: Store) -> None:
    await store.outbox.enqueue(message("k1"))
    (claimed,) = await store.outbox.claim("w", T0, LEASE)
    await store.outbox.mark_failed(claimed.id or 0, "refused: \x00bad", T0)
    stored = await store.outbox.get(claimed.id or 0)
    assert stored is not None and (stored.status, stored.last_error) == (
        "failed",
        "refused: \ufffdbad",
    )
