"""Maintenance windows and probe agents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from classifier.observation import Service
from ctiwatch.storage import AgentRecord, MaintenanceRecord, OutboxMessage, Store

T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)


def window(
    starts: datetime,
    hours: int,
    services: tuple[str, ...] = (),
    locations: tuple[str, ...] = (),
) -> MaintenanceRecord:
    return MaintenanceRecord(
        starts_at=starts,
        ends_at=starts + timedelta(hours=hours),
        reason="CloudCTI platform upgrade",
        created_by="jan",
        created_at=T0 - timedelta(days=2),
        services=services,
        locations=locations,
    )


async def test_active_at_includes_the_start_and_excludes_the_end(store: Store) -> None:
    upgrade = await store.maintenance.add(window(T0, 2, services=("crm",), locations=("ams",)))
    later = await store.maintenance.add(window(T0 + timedelta(days=1), 1))
    assert upgrade.id is not None and later.id is not None
    assert upgrade.services == ("crm",) and upgrade.customers == ()

    assert await store.maintenance.active_at(T0 - timedelta(microseconds=1)) == []
    assert await store.maintenance.active_at(T0) == [upgrade]
    assert await store.maintenance.active_at(T0 + timedelta(hours=2, microseconds=-1)) == [upgrade]
    assert await store.maintenance.active_at(T0 + timedelta(hours=2)) == []
    assert await store.maintenance.active_at(T0 + timedelta(days=1, minutes=30)) == [later]

    assert upgrade.window.covers_place(Service.CRM, "acme", "ams")
    assert not upgrade.window.covers_place(Service.CLICK2DIAL, "acme", "ams")
    assert later.window.covers_place(Service.CLICK2DIAL, "globex", "rtm")  # empty: everything

    assert await store.maintenance.list() == [upgrade, later]
    assert await store.maintenance.list(ending_after=T0 + timedelta(hours=3)) == [later]
    assert await store.maintenance.delete(upgrade.id)
    assert not await store.maintenance.delete(upgrade.id)
    assert await store.maintenance.list() == [later]


async def test_a_window_that_ends_before_it_starts_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="ends_at must be after starts_at"):
        await store.maintenance.add(window(T0, 0))


async def test_agent_upsert_keeps_the_newest_sighting(store: Store) -> None:
    await store.agents.upsert(AgentRecord("agent-ams", T0, "online", {"version": "1.0"}))
    await store.agents.upsert(AgentRecord("agent-rtm", T0 - timedelta(minutes=10)))
    await store.agents.upsert(
        AgentRecord("agent-ams", T0 + timedelta(seconds=30), "online", {"version": "1.1"})
    )
    # A delayed, older heartbeat does not move last_seen back.
    await store.agents.upsert(AgentRecord("agent-ams", T0, "online", {"version": "1.0"}))

    assert await store.agents.get("agent-ams") == AgentRecord(
        "agent-ams", T0 + timedelta(seconds=30), "online", {"version": "1.1"}
    )
    assert [a.name for a in await store.agents.list()] == ["agent-ams", "agent-rtm"]
    assert await store.agents.get("agent-zzz") is None


async def test_silent_agents_go_offline_once(store: Store) -> None:
    await store.agents.upsert(AgentRecord("agent-ams", T0))
    await store.agents.upsert(AgentRecord("agent-rtm", T0 - timedelta(minutes=10)))
    cutoff = T0 - timedelta(minutes=5)

    assert await store.agents.mark_offline(cutoff) == ["agent-rtm"]
    assert await store.agents.mark_offline(cutoff) == []
    rtm = await store.agents.get("agent-rtm")
    assert rtm is not None and rtm.status == "offline"
    await store.agents.upsert(AgentRecord("agent-rtm", T0 + timedelta(minutes=1)))
    back = await store.agents.get("agent-rtm")
    assert back is not None and back.status == "online"


async def test_a_change_and_a_cancel_keep_who_when_why_and_what_it_was_before(
    store: Store,
) -> None:
    first = await store.maintenance.add(window(T0, 2, services=("crm",)), why="announced")
    assert first.id is not None
    later = T0 - timedelta(days=1)
    async with store.transaction() as tx:
        changed = await tx.maintenance.change(
            first.id,
            replace(first, ends_at=T0 + timedelta(hours=3), reason="longer upgrade"),
            "piet",
            later,
            "the vendor needs an extra hour",
        )
    assert changed is not None and (changed.revision, changed.reason) == (2, "longer upgrade")
    cancelled = await store.maintenance.cancel(first.id, "ann", later + timedelta(hours=1), "moved")
    assert cancelled is not None and cancelled.revision == 3
    history = await store.maintenance.revisions(first.id)
    assert [(r.revision, r.action, r.actor, r.at, r.reason) for r in history] == [
        (1, "scheduled", "jan", T0 - timedelta(days=2), "announced"),
        (2, "changed", "piet", later, "the vendor needs an extra hour"),
        (3, "cancelled", "ann", later + timedelta(hours=1), "moved"),
    ]
    assert history[0].before is None
    assert history[1].before is not None and history[1].before["end"] == (
        (T0 + timedelta(hours=2)).isoformat()
    )
    assert history[2].before is not None and history[2].before["reason"] == "longer upgrade"


async def test_a_recurring_window_is_listed_until_its_last_occurrence_ends(store: Store) -> None:
    spans = tuple((T0 + timedelta(days=7 * i), T0 + timedelta(days=7 * i, hours=2)) for i in (0, 1))
    series = await store.maintenance.add(replace(window(T0, 2), recurrence="FREQ=WEEKLY;COUNT=2",
                                                 occurrences=spans))  # fmt: skip
    assert series.spans == spans and series.series_ends_at == spans[1][1]
    assert await store.maintenance.list(ending_after=T0 + timedelta(days=3)) == [series]
    assert await store.maintenance.active_at(T0 + timedelta(days=3)) == []
    assert await store.maintenance.active_at(T0 + timedelta(days=7, hours=1)) == [series]
    assert [w.start for w in series.windows] == [s for s, _ in spans]


async def test_pending_notices_of_a_window_are_dropped_but_sent_ones_stay(store: Store) -> None:
    def notice(key: str) -> OutboxMessage:
        return OutboxMessage(
            idempotency_key=key,
            incident_number=None,
            channel="email",
            recipient="it@acme.example",
            kind="maintenance_reminder",
            subject="s",
            body="b",
            created_at=T0,
            not_before=T0 + timedelta(days=1),
        )

    for key in ("maintenance:1:r1:reminder", "maintenance:1:r1:start", "maintenance:10:r1:x"):
        await store.outbox.enqueue(notice(key))
    async with store.transaction() as tx:
        assert await tx.outbox.drop_pending("maintenance:1:") == 2
    assert [m.idempotency_key for m in await store.outbox.list()] == ["maintenance:10:r1:x"]
