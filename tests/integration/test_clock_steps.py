"""The wall clock stepping an hour forward and back (NTP, a DST mistake) under the live pipeline:
the real console service (store, restored monitor, pipeline) with a clock the test steps.

No incident is duplicated or lost, no alert is sent twice, escalation pages one step at a time
(never the whole chain at once, never a step again), and SLA times stay sane: a step back never
dates an event before an earlier one nor makes an elapsed time negative.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from console_scene import NOW, TOPOLOGY, Scene, _console

from classifier.observation import Service
from ctiwatch.app import restore_monitor
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config
from ctiwatch.persist import ESCALATION_KEY, Pipeline
from ctiwatch.storage import Store

ONCALL = "+31611111111"
STEPS = ["+31622222222", "+31633333333", "+31644444444"]
AFTER = timedelta(minutes=5)
HOUR = timedelta(hours=1)


@pytest.fixture
async def scene(storage_url: str) -> AsyncIterator[Scene]:
    config = Config.model_validate(
        {
            "topology": TOPOLOGY,
            "storage": {"url": storage_url},
            # P1 response and update within the hour: warned at 30m, breached at 40m.
            "sla": {"targets": {1: {"response": "40m", "update": "40m"}}},
            "alerting": {
                "oncall": [ONCALL],
                "escalation": [
                    {"name": f"step {n + 1}", "after": "5m", "numbers": [number]}
                    for n, number in enumerate(STEPS)
                ],
            },
        }
    )
    clock = FixedClock(NOW)
    async with Store.open(storage_url) as store:
        monitor = await restore_monitor(config, store, clock)
        pipeline = Pipeline(monitor, store, clock)
        made = Scene(console=None, pipeline=pipeline, store=store, clock=clock, config=config)  # type: ignore[arg-type]
        made.console = _console(made)
        yield made


async def outage_round(scene: Scene, count: int = 1) -> None:
    await scene.rounds("acme", "acme-ams", ["alice", "anna"], Service.CLICK2DIAL, ok=False,
                       count=count, every=timedelta(seconds=20))  # fmt: skip


async def ticks(scene: Scene, times: int = 5) -> None:
    """What the timers task does when woken: tick while something is due."""
    for _ in range(times):
        await scene.pipeline.tick()


async def escalated_to(scene: Scene) -> list[str]:
    return [
        m.recipient
        for m in await scene.store.outbox.list(limit=1000)
        if m.kind == "escalated" and m.channel == "sms" and m.recipient != ONCALL
    ]


async def assert_sane(scene: Scene) -> None:
    """One incident; every outbox key once; the timeline in time order and never before the
    opening; memory exactly what the database holds (also after a restart)."""
    outbox = await scene.store.outbox.list(limit=1000)
    assert [n for n, c in Counter(m.idempotency_key for m in outbox).items() if c > 1] == []
    records = await scene.store.incidents.list(limit=100)
    assert [(r.number, r.customer) for r in records] == [(1, "acme")]
    [incident] = scene.pipeline.monitor.engine.incidents()
    times = [entry.at for entry in incident.timeline]
    assert times == sorted(times) and times[0] == incident.opened_at
    for moment in (incident.acknowledged_at, incident.resolved_at):
        assert moment is None or moment >= incident.opened_at
    stored = {k: v for k, v in records[0].state.items() if k != ESCALATION_KEY}
    assert stored == json.loads(json.dumps(incident.to_dict()))
    restored = await restore_monitor(scene.config, scene.store, scene.clock)
    assert [i.to_dict() for i in restored.engine.incidents()] == [incident.to_dict()]
    assert restored.escalation_of(1) == scene.pipeline.monitor.escalation_of(1)


async def test_an_hour_forward_pages_one_escalation_step_and_each_timer_once(
    scene: Scene,
) -> None:
    await outage_round(scene, count=3)  # the third round opens a P1
    [incident] = scene.pipeline.monitor.engine.incidents()
    opened = incident.opened_at
    assert await escalated_to(scene) == []

    scene.clock.set(opened + HOUR)  # the wall clock jumps an hour
    await ticks(scene)
    await outage_round(scene)
    await ticks(scene)
    # One step paged at the jump, not the whole chain; the next one a step delay later.
    assert await escalated_to(scene) == [STEPS[0]]
    scene.clock.advance(AFTER)
    await ticks(scene)
    assert sorted(await escalated_to(scene)) == STEPS[:2]
    # The response clock's warning and breach (due in the skipped hour) fire once each.
    [incident] = scene.pipeline.monitor.engine.incidents()
    timers = Counter(e.kind for e in incident.timeline if "warning" in e.kind or "breach" in e.kind)
    assert timers and set(timers.values()) == {1}, timers
    # They reached people, on their own or combined into the page of the same instant.
    bodies = [m.body for m in await scene.store.outbox.list(limit=1000) if m.channel == "sms"]
    assert any("response due" in b for b in bodies), bodies
    assert any("response target BREACHED" in b for b in bodies), bodies
    again = Counter(m.kind for m in await scene.store.outbox.list(limit=1000))
    await ticks(scene)
    assert Counter(m.kind for m in await scene.store.outbox.list(limit=1000)) == again
    await assert_sane(scene)


async def test_an_hour_back_repeats_nothing_and_no_time_runs_backward(scene: Scene) -> None:
    await outage_round(scene, count=3)
    [incident] = scene.pipeline.monitor.engine.incidents()
    opened = incident.opened_at
    scene.clock.set(opened + AFTER)
    await ticks(scene)
    assert await escalated_to(scene) == [STEPS[0]]
    before = sorted(m.idempotency_key for m in await scene.store.outbox.list(limit=1000))

    scene.clock.set(opened + AFTER - HOUR)  # the wall clock steps back an hour
    await outage_round(scene)  # results dated an hour "earlier" still come in
    await ticks(scene)
    scene.clock.advance(AFTER)  # what was due in that hour is not due again
    await ticks(scene)
    assert sorted(m.idempotency_key for m in await scene.store.outbox.list(limit=1000)) == before

    # A person acknowledges while the clock is an hour behind: never before the opening.
    await scene.console.acknowledge(1, "alice@cloudcti.nl")
    [incident] = scene.pipeline.monitor.engine.incidents()
    assert incident.acknowledged_at is not None and incident.acknowledged_at >= opened
    view = await scene.console.incident(1)
    assert not str(view).count("-0:") and "-1 day" not in str(view)
    await assert_sane(scene)

    # The wall clock catches up: time moves on from where it stood, nothing is paged again.
    scene.clock.set(opened + 2 * HOUR)
    await ticks(scene)
    await outage_round(scene)
    assert await escalated_to(scene) == [STEPS[0]]  # acknowledged: the chain stopped
    await assert_sane(scene)
