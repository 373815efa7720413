"""Several workers, each probing its share: a worker beside the active monitor reads back what
the others stored (every ``workers.poll``) into its own pages and classifier, so its status
shows every target's latest state, not only the targets it probes; on a real PostgreSQL
database, the real pipelines and console service, a fixed clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from running_app import until

from classifier.observation import CALL_SERVICES, ProbeResult, Service, TargetKey
from ctiwatch.app import restore_monitor
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config
from ctiwatch.console import ConsoleServiceImpl
from ctiwatch.leadership import Leadership
from ctiwatch.persist import NotLeader, Pipeline
from ctiwatch.storage import Store

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday, inside support hours
TOPOLOGY = {
    "customers": [
        {"id": "acme", "name": "ACME B.V.",
         "locations": [{"id": "acme-ams", "users": ["alice", "bob"]}]},
        {"id": "globex", "name": "Globex", "locations": [{"id": "globex-utr", "users": ["frank"]}]},
    ]
}  # fmt: skip
_ids = itertools.count(1)


def rounds(keys: list[TargetKey], at: datetime, *, ok: bool = True) -> list[ProbeResult]:
    return [
        ProbeResult(
            f"r{next(_ids)}",
            key,
            at,
            ok,
            (True if ok else None) if key.service is Service.CRM else None,
            12.0,
            201 if ok else 503,
            "POST http://sim [STATUS] (201) == 201" if ok else "[STATUS] (503) == 201",
        )
        for key in keys
    ]


async def test_a_follower_shows_every_targets_latest_state_from_what_the_others_stored(
    pg_database_factory: Callable[[], Awaitable[str]],
) -> None:
    url = await pg_database_factory()
    config = Config.model_validate(
        {
            "topology": TOPOLOGY,
            "storage": {"url": url},
            "probes": {"interval": "10s"},
            "classification": {"failed_rounds": 3},
        }
    )
    clock = FixedClock(NOW)
    alice_crm = TargetKey(Service.CRM, "acme", "acme-ams", "alice")
    frank_c2d = TargetKey(Service.CLICK2DIAL, "globex", "globex-utr", "frank")
    others = [
        TargetKey(service, "acme", "acme-ams", user)
        for user in ("alice", "bob")
        for service in CALL_SERVICES
        if (user, service) != ("alice", Service.CRM)
    ] + [TargetKey(Service.CRM, "globex", "globex-utr", "frank")]
    async with Store.open(url) as store:
        leases = [
            Leadership(store.leader, clock, holder, lease=timedelta(seconds=15))
            for holder in ("node-a/1/aaa", "node-b/2/bbb")
        ]
        assert await leases[0].try_once() and not await leases[1].try_once()
        leader, follower = [
            Pipeline(await restore_monitor(config, store, clock), store, clock, leadership=lease)
            for lease in leases
        ]
        pages = ConsoleServiceImpl(config, follower)
        first = await pages.status()  # the read model's first load: nothing stored yet
        assert {u.state for u in first.users} == {"unknown"}

        # The follower probes alice's CRM; the active monitor (another worker) everything else,
        # and sees frank's Click2Dial fail three rounds.
        reading = asyncio.create_task(follower.follow(timedelta(seconds=1)))
        try:
            for n in range(3):
                at = NOW + n * timedelta(seconds=10)
                await follower.on_results(rounds([alice_crm], at))
                await leader.on_results(rounds(others, at) + rounds([frank_c2d], at, ok=False))

            async def caught_up() -> bool:
                view = await pages.status()
                states = {(u.user, u.service): u.state for u in view.users}
                return "unknown" not in states.values() and bool(view.open_incidents)

            await until(caught_up, "the follower's pages showing what the others stored")
        finally:
            reading.cancel()
        view = await pages.status()
        states = {(u.customer, u.user, u.service): u.state for u in view.users}
        assert states == {
            ("acme", "alice", "click2dial"): "ok",
            ("acme", "alice", "crm"): "ok",
            ("acme", "bob", "click2dial"): "ok",
            ("acme", "bob", "crm"): "ok",
            ("globex", "frank", "click2dial"): "down",
            ("globex", "frank", "crm"): "ok",
        }
        tiles = {
            (location.id, tile.service): tile
            for customer in view.customers
            for location in customer.locations
            for tile in location.services
        }
        # Every CRM call counted once: alice's from the follower's own, bob's read back.
        assert tiles[("acme-ams", "crm")].calls == 6
        assert tiles[("globex-utr", "click2dial")].state == "down"
        # The incident is the active monitor's: the follower shows it, and changes none.
        [incident] = view.open_incidents
        assert incident.customer == "globex"
        with pytest.raises(NotLeader):
            await follower.tick()
