"""Incidents, timelines and their outbox rows: one unit of work, all or nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from classifier.observation import Service
from ctiwatch.storage import (
    IncidentRecord,
    OutboxMessage,
    ScopeItem,
    StorageError,
    Store,
    TimelineEntry,
)
from sla.priority import Priority

OPENED = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)  # Fri 15:00 in Amsterdam


def incident(number: int, **changes: object) -> IncidentRecord:
    record = IncidentRecord(
        number=number,
        customer="acme",
        automatic=True,
        priority=Priority.CRITICAL,
        status="open",
        title="Click2Dial unavailable at acme-ams",
        opened_at=OPENED,
        updated_at=OPENED,
        response_due=datetime(2026, 12, 7, 9, 30, tzinfo=UTC),
        update_due=datetime(2026, 12, 7, 9, 30, tzinfo=UTC),
        scope=(ScopeItem(Service.CLICK2DIAL, "acme-ams", None, Priority.CRITICAL),),
        state={"generation": 1, "rounds": {"click2dial/acme-ams": 3}},
    )
    return replace(record, **changes)  # type: ignore[arg-type]


def sms(number: int, key: str, at: datetime = OPENED) -> OutboxMessage:
    return OutboxMessage(
        idempotency_key=key,
        channel="sms",
        recipient="+31612345678",
        kind="opened",
        body=f"P1 #{number} acme: Click2Dial unavailable at acme-ams",
        created_at=at,
        incident_number=number,
        payload={"step": 0},
    )


async def test_incident_its_timeline_and_its_messages_commit_together(store: Store) -> None:
    async with store.transaction() as tx:
        number = await tx.incidents.next_number()
        # Order inside the unit of work does not matter: the foreign keys are deferred.
        await tx.timeline.add(
            TimelineEntry(number, OPENED, "opened", "3 failed rounds for every user")
        )
        await tx.incidents.save(incident(number))
        assert await tx.outbox.enqueue(sms(number, f"inc-{number}-opened-sms-0"))
        assert not await tx.outbox.enqueue(sms(number, f"inc-{number}-opened-sms-0"))

    assert number == 1
    stored = await store.incidents.get(1)
    assert stored == incident(1)
    assert stored is not None and stored.opened_at.tzinfo is UTC
    assert await store.incidents.timeline(1) == [
        TimelineEntry(1, OPENED, "opened", "3 failed rounds for every user", "ctiwatch")
    ]
    (message,) = await store.outbox.list(incident_number=1)
    assert (message.idempotency_key, message.status, message.not_before) == (
        "inc-1-opened-sms-0",
        "pending",
        OPENED,
    )
    assert message.payload == {"step": 0}


async def test_a_failing_unit_of_work_leaves_no_incident_timeline_message_or_number(
    store: Store,
) -> None:
    with pytest.raises(RuntimeError, match="router crashed"):
        async with store.transaction() as tx:
            number = await tx.incidents.next_number()
            await tx.incidents.save(incident(number))
            await tx.timeline.add(TimelineEntry(number, OPENED, "opened", "scope: acme-ams"))
            await tx.outbox.enqueue(sms(number, "inc-1-opened-sms-0"))
            raise RuntimeError("router crashed")

    assert await store.incidents.get(1) is None
    assert await store.incidents.list() == []
    assert await store.incidents.timeline(1) == []
    assert await store.outbox.list() == []
    async with store.transaction() as tx:
        assert await tx.incidents.next_number() == 1  # the allocation was rolled back too


async def test_a_timeline_entry_for_an_unknown_incident_fails_the_whole_commit(
    store: Store,
) -> None:
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        async with store.transaction() as tx:
            await tx.outbox.enqueue(sms(99, "report-1"))
            await tx.timeline.add(TimelineEntry(99, OPENED, "opened", "no such incident"))
    assert await store.outbox.list() == []


async def test_saving_again_replaces_the_incident_and_numbers_keep_counting(store: Store) -> None:
    async with store.transaction() as tx:
        first = await tx.incidents.next_number()
        await tx.incidents.save(incident(first))
        second = await tx.incidents.next_number()
        await tx.incidents.save(incident(second, customer="globex", automatic=False))
    acked_at = OPENED + timedelta(minutes=20)
    resolved = incident(
        first,
        status="resolved",
        priority=Priority.HIGH,
        acknowledged_at=acked_at,
        resolved_at=OPENED + timedelta(hours=2),
        resolved_by="ctiwatch",
        breaches=("update",),
        state={"generation": 4},
        updated_at=OPENED + timedelta(hours=2),
    )
    async with store.transaction() as tx:
        locked = await tx.incidents.get(first, for_update=True)
        assert locked == incident(first)
        await tx.incidents.save(resolved)
        await tx.timeline.add_many(
            [
                TimelineEntry(first, acked_at, "acknowledged", "by phone", "jan"),
                TimelineEntry(first, OPENED + timedelta(hours=2), "resolved", "3 good rounds"),
            ]
        )

    assert (first, second) == (1, 2)
    assert await store.incidents.get(first) == resolved
    assert [i.number for i in await store.incidents.list()] == [2, 1]
    assert [i.number for i in await store.incidents.list(status="open")] == [2]
    assert [i.number for i in await store.incidents.list(customer="acme")] == [1]
    assert await store.incidents.open_for_customer("acme") == []
    assert [i.number for i in await store.incidents.open_for_customer("globex")] == [2]
    assert [e.kind for e in await store.incidents.timeline(first)] == ["acknowledged", "resolved"]


async def test_open_for_customer_inside_a_unit_of_work(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.incidents.save(incident(await tx.incidents.next_number()))
    async with store.transaction() as tx:
        (current,) = await tx.incidents.open_for_customer("acme", for_update=True)
        assert current.number == 1
        assert await tx.incidents.open_for_customer("globex") == []


async def test_in_month_uses_amsterdam_month_boundaries(store: Store) -> None:
    # 2026-11-30 23:30 UTC is already December 1st in Amsterdam; 2026-12-31 23:30 UTC is
    # January 1st.
    opened = [
        datetime(2026, 11, 30, 22, 59, tzinfo=UTC),  # Nov 30 23:59 local: November
        datetime(2026, 11, 30, 23, 30, tzinfo=UTC),  # Dec 1 00:30 local: December
        datetime(2026, 12, 15, 12, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 30, tzinfo=UTC),  # Jan 1 00:30 local: January
    ]
    async with store.transaction() as tx:
        for at in opened:
            number = await tx.incidents.next_number()
            await tx.incidents.save(incident(number, opened_at=at, updated_at=at))
    december = await store.incidents.in_month(date(2026, 12, 1))
    assert [i.number for i in december] == [2, 3]
    assert [i.number for i in await store.incidents.in_month(date(2026, 11, 20))] == [1]
    assert [i.number for i in await store.incidents.in_month(date(2027, 1, 1))] == [4]


async def test_invalid_incident_values_are_refused_before_the_database(store: Store) -> None:
    with pytest.raises(ValueError, match="status 'closed'"):
        async with store.transaction() as tx:
            await tx.incidents.save(incident(1, status="closed"))
    with pytest.raises(ValueError, match="opened_at must be timezone-aware"):
        async with store.transaction() as tx:
            await tx.incidents.save(incident(1, opened_at=datetime(2026, 12, 4, 14, 0)))


async def test_a_store_write_inside_a_unit_of_work_is_refused(store: Store) -> None:
    with pytest.raises(StorageError, match="use the transaction's tx"):
        async with store.transaction() as tx:
            await tx.incidents.save(incident(await tx.incidents.next_number()))
            await store.outbox.enqueue(sms(1, "outside-the-unit-of-work"))
    assert await store.incidents.list() == []
    assert await store.outbox.list() == []
