"""The service's monitor and pipeline hold a bounded number of incidents, on both backends:
every incident stays in the database, only the newest resolved ones stay in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctiwatch.clock import FixedClock
from ctiwatch.config import config_from_data
from ctiwatch.persist import Pipeline
from ctiwatch.settings import monitor_settings, policy_from_config
from ctiwatch.storage import Store
from incidents.model import IncidentError
from pipeline.monitor import Monitor

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_a_long_running_pipeline_holds_the_newest_resolved_incidents_and_stores_all(
    store: Store,
) -> None:
    config = config_from_data(
        {"topology": {"customers": [{"id": "acme", "locations": [{"id": "ams", "users": ["a"]}]}]}}
    )
    monitor = Monitor(monitor_settings(config), policy_from_config(config.sla), keep_resolved=3)
    clock = FixedClock(START)
    pipeline = Pipeline(monitor, store, clock)

    for n in range(1, 21):
        await pipeline.act(lambda now: monitor.open_question("acme", now, "ops", "a question"))
        clock.advance(timedelta(minutes=1))
        await pipeline.act(lambda now, n=n: monitor.resolve(n, now, "ops", "answered"))
        clock.advance(timedelta(minutes=1))

    assert [i.number for i in monitor.engine.incidents()] == [18, 19, 20]
    assert sorted(pipeline._stored_timeline) == [18, 19, 20]
    assert len(await store.incidents.list(limit=100)) == 20
    reopened = await pipeline.act(lambda now: monitor.reopen(20, now, "ops", "not answered"))
    assert [e.incident for e in reopened.events] == [20]
    with pytest.raises(IncidentError, match="incident 1 does not exist"):
        await pipeline.act(lambda now: monitor.reopen(1, now, "ops"))
