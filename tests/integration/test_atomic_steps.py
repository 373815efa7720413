"""Every step of the live pipeline is atomic: the database refusing a step's commit leaves no
trace in memory or in the database, and once it takes commits again the step's effect (the
incident, its timeline and its pages) is stored exactly once. The refusal is the database's own:
a trigger that aborts every insert into the outbox, on SQLite and on PostgreSQL.

Escalation state is stored with its incident, so a restart continues each chain where it was.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from console_scene import NOW, Scene, real_console
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from classifier.observation import Service, TargetKey
from ctiwatch.persist import ESCALATION_KEY
from ctiwatch.web.service import ServiceError

REFUSED = "refused by the fault test"


@asynccontextmanager
async def outbox_refused(storage_url: str) -> AsyncIterator[None]:
    """While inside, the database aborts every insert into ``outbox`` (and so the whole step)."""
    engine = create_async_engine(storage_url)
    sqlite = storage_url.startswith("sqlite")
    on = (
        [
            "CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox "
            f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
        ]
        if sqlite
        else [
            "CREATE FUNCTION refuse_outbox() RETURNS trigger AS $$ BEGIN "
            f"RAISE EXCEPTION '{REFUSED}'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox "
            "FOR EACH ROW EXECUTE FUNCTION refuse_outbox()",
        ]
    )
    off = (
        ["DROP TRIGGER refuse_outbox"]
        if sqlite
        else ["DROP TRIGGER refuse_outbox ON outbox", "DROP FUNCTION refuse_outbox()"]
    )
    try:
        async with engine.begin() as conn:
            for statement in on:
                await conn.execute(text(statement))
        yield
    finally:
        async with engine.begin() as conn:
            for statement in off:
                await conn.execute(text(statement))
        await engine.dispose()


async def stored_states(scene: Scene) -> dict[int, dict[str, Any]]:
    return {r.number: dict(r.state) for r in await scene.store.incidents.list(limit=1000)}


async def assert_memory_is_the_database(scene: Scene) -> None:
    """Every incident the monitor holds is stored exactly as it holds it, and no other."""
    stored = await stored_states(scene)
    monitor = scene.pipeline.monitor
    held = {i.number: json.loads(json.dumps(i.to_dict())) for i in monitor.engine.incidents()}
    assert {n: {k: v for k, v in s.items() if k != ESCALATION_KEY} for n, s in stored.items()} == (
        held
    )
    for number in held:
        escalation = monitor.escalation_of(number)
        assert (escalation is None) == (ESCALATION_KEY not in stored[number])


async def outage(scene: Scene, rounds: int = 3) -> None:
    await scene.rounds("acme", "acme-ams", ["alice", "anna"], Service.CLICK2DIAL, ok=False,
                       count=rounds)  # fmt: skip


@pytest.fixture
async def scene(storage_url: str) -> AsyncIterator[Scene]:
    async with real_console(storage_url, NOW) as opened:
        yield opened


async def test_a_step_the_database_refuses_leaves_no_incident_and_no_page_behind(
    scene: Scene, storage_url: str
) -> None:
    async with outbox_refused(storage_url):
        await outage(scene)  # the third round opens a P1; its commit is refused
        assert scene.pipeline.monitor.engine.incidents() == []
        assert await stored_states(scene) == {}
        assert await scene.store.outbox.list() == []
        # The results themselves were stored before the step ran: nothing seen is lost.
        alice = TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", "alice")
        since = NOW - timedelta(hours=1)
        history = await scene.store.results.history(alice, since, NOW + timedelta(seconds=1))
        assert len(history) == 3


async def test_once_the_database_takes_commits_again_the_refused_step_is_stored_exactly_once(
    scene: Scene, storage_url: str
) -> None:
    async with outbox_refused(storage_url):
        await outage(scene)
    scene.clock.advance(timedelta(seconds=5))
    await scene.pipeline.tick()

    [incident] = scene.pipeline.monitor.engine.incidents()
    assert (incident.number, incident.customer, int(incident.priority)) == (1, "acme", 1)
    assert incident.opened_at == NOW + timedelta(seconds=5)  # when it could be reported
    messages = await scene.store.outbox.list()
    keys = [m.idempotency_key for m in messages]
    assert len(keys) == len(set(keys)) > 0
    assert [m.kind for m in messages].count("report") == 1
    assert [e.kind for e in await scene.store.incidents.timeline(1)].count("opened") == 1
    await assert_memory_is_the_database(scene)

    await outage(scene, rounds=2)  # the outage goes on: nothing new opens or pages
    assert [i.number for i in scene.pipeline.monitor.engine.incidents()] == [1]
    assert len(await scene.store.outbox.list()) == len(messages)


async def test_a_persons_action_the_database_refuses_answers_503_and_changes_nothing(
    scene: Scene, storage_url: str
) -> None:
    await outage(scene)
    before = await stored_states(scene)
    async with outbox_refused(storage_url):
        with pytest.raises(ServiceError) as refused:
            await scene.console.open_question("acme", "Sanne", "Is the trunk being replaced?")
    assert refused.value.status == 503
    assert "nothing changed" in str(refused.value)
    assert await stored_states(scene) == before
    assert [i.number for i in scene.pipeline.monitor.engine.incidents()] == [1]
    await assert_memory_is_the_database(scene)
    # Asked again once the database is back, it is incident 2 (the refused number is not used).
    assert await scene.console.open_question("acme", "Sanne", "Is the trunk being replaced?") == 2
    await assert_memory_is_the_database(scene)


async def test_a_restart_continues_each_escalation_chain_where_it_was(
    scene: Scene, tmp_path: Path
) -> None:
    await outage(scene)
    monitor = scene.pipeline.monitor
    before = monitor.escalation_of(1)
    assert before is not None and before.next_due is not None
    due = before.next_due
    scene.clock.set(due - timedelta(minutes=2))  # restarted two minutes before the next page

    await scene.restart()

    after = scene.pipeline.monitor.escalation_of(1)
    assert after == before  # same step, same generation, same due time: not "from now"
    scene.clock.set(due)
    await scene.pipeline.tick()
    escalated = [e for e in await scene.store.incidents.timeline(1) if e.kind == "escalated"]
    assert [e.at for e in escalated] == [due]


async def test_an_update_with_a_nul_is_refused_naming_the_field_and_the_incident_stays_usable(
    scene: Scene,
) -> None:
    await outage(scene)
    with pytest.raises(ServiceError) as refused:
        await scene.console.update(1, "Sanne", "carrier\x00 says soon")
    assert (refused.value.status, refused.value.field) == (400, "text")
    await scene.console.update(1, "Sanne", "carrier says soon")
    assert [e.detail for e in await scene.store.incidents.timeline(1)][-1].endswith(
        "carrier says soon"
    )
    await assert_memory_is_the_database(scene)
