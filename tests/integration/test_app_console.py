"""The real console service over a SQLite store: actions persist, errors speak HTTP, maintenance
windows must lie outside support hours (the SLA calendar), and a restart restores incidents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctiwatch.app import restore_monitor
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config
from ctiwatch.console import AgentHealthView, ConsoleServiceImpl
from ctiwatch.persist import Pipeline
from ctiwatch.storage import AgentRecord, OutboxMessage, Store
from ctiwatch.web.service import AgentView, MqttView, ServiceError, WindowRequest

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=AMS)  # Tuesday, inside support hours


def _config(tmp_path: Path) -> Config:
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
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/ctiwatch.db"},
        }
    )


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[ConsoleServiceImpl]:
    config = _config(tmp_path)
    clock = FixedClock(NOW)
    async with Store.open(config.storage.url) as store:
        monitor = await restore_monitor(config, store, clock)
        yield ConsoleServiceImpl(config, Pipeline(monitor, store, clock))


async def test_maintenance_starting_inside_support_hours_is_refused_naming_start(
    console: ConsoleServiceImpl,
) -> None:
    with pytest.raises(ServiceError) as caught:
        await console.schedule_maintenance(
            WindowRequest(
                datetime(2026, 12, 2, 16, 30, tzinfo=AMS),
                datetime(2026, 12, 2, 20, 0, tzinfo=AMS),
                None,
                None,
                "upgrade",
            ),
            "Ops",
        )
    assert (caught.value.status, caught.value.field) == (400, "start")


async def test_maintenance_running_into_the_next_opening_is_refused_naming_end(
    console: ConsoleServiceImpl,
) -> None:
    with pytest.raises(ServiceError) as caught:
        await console.schedule_maintenance(
            WindowRequest(
                datetime(2026, 12, 2, 22, 0, tzinfo=AMS),
                datetime(2026, 12, 3, 8, 31, tzinfo=AMS),
                ["crm"],
                None,
                "upgrade",
            ),
            "Ops",
        )
    assert (caught.value.status, caught.value.field) == (400, "end")
    assert "Thu 03 Dec 08:30" in caught.value.message


async def test_maintenance_over_a_christmas_holiday_is_stored_and_kept_when_cancelled(
    console: ConsoleServiceImpl,
) -> None:
    window = await console.schedule_maintenance(
        WindowRequest(
            datetime(2026, 12, 24, 17, 0, tzinfo=AMS),
            datetime(2026, 12, 27, 12, 0, tzinfo=AMS),
            ["click2dial"],
            ["acme"],
            " CRM upgrade ",
        ),
        "Ops",
    )
    assert window.state == "scheduled"
    assert window.services == ("click2dial",)
    assert window.customers == ("acme",)
    assert window.reason == "CRM upgrade"
    assert [w.id for w in await console.maintenance()] == [window.id]
    cancelled = await console.cancel_maintenance(window.id, "Ops")
    assert (cancelled.state, cancelled.cancelled_by, cancelled.cancelled_at) == (
        "cancelled",
        "Ops",
        NOW,
    )
    assert await console.maintenance() == [cancelled]  # kept as history
    with pytest.raises(ServiceError) as caught:
        await console.cancel_maintenance(window.id, "Ops")
    assert (caught.value.status, caught.value.message) == (
        409,
        f"maintenance window {window.id} has been cancelled by Ops",
    )
    with pytest.raises(ServiceError) as unknown:
        await console.cancel_maintenance(window.id + 1, "Ops")
    assert unknown.value.status == 404


async def test_actions_persist_and_refuse_what_does_not_apply(
    console: ConsoleServiceImpl, tmp_path: Path
) -> None:
    with pytest.raises(ServiceError) as unknown:
        await console.acknowledge(7, "Ann")
    assert unknown.value.status == 404
    with pytest.raises(ServiceError) as customer:
        await console.open_question("nobody", "Ann", "Why?")
    assert (customer.value.status, customer.value.field) == (400, "customer")

    number = await console.open_question("acme", "Ann", "Can we add a location?")
    assert number == 1
    await console.acknowledge(1, "Ann")
    with pytest.raises(ServiceError) as twice:
        await console.acknowledge(1, "Ann")
    assert twice.value.status == 409
    await console.resolve(1, "Bob")
    with pytest.raises(ServiceError) as resolved:
        await console.update(1, "Bob", "more")
    assert resolved.value.status == 409

    detail = await console.incident(1)
    assert detail is not None
    assert detail.summary.status == "resolved"
    assert detail.summary.priority == 4
    assert detail.summary.resolved_by == "person"
    assert detail.summary.acknowledged_at == NOW.astimezone(UTC)
    assert [(e.kind, e.actor) for e in detail.timeline] == [
        ("opened", "Ann"),
        ("acknowledged", "Ann"),
        ("resolved", "Bob"),
    ]
    summaries = await console.incidents("resolved", None, 10)
    assert [(s.number, s.status) for s in summaries] == [(1, "resolved")]
    assert await console.incidents("active", None, 10) == []

    # A restart on the same database carries on numbering and can reopen incident 1.
    config = _config(tmp_path)
    clock = FixedClock(NOW)
    async with Store.open(config.storage.url) as store:
        monitor = await restore_monitor(config, store, clock)
        again = ConsoleServiceImpl(config, Pipeline(monitor, store, clock))
        await again.reopen(1, "Carol")
        assert await again.open_question("acme", "Carol", "Another question") == 2
        active = await again.incidents("active", None, 10)
        assert [(s.number, s.status) for s in active] == [(2, "open"), (1, "open")]


async def test_status_gives_stored_agents_their_own_fields_and_mqtt_disabled_when_off(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    clock = FixedClock(NOW)
    async with Store.open(config.storage.url) as store:
        await store.agents.upsert(
            AgentRecord(
                name="ams-1",
                last_seen=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
                status="offline",
                meta={"results": 42, "locations": ["acme-ams"], "reason": "connection lost"},
            )
        )
        monitor = await restore_monitor(config, store, clock)
        status = await ConsoleServiceImpl(config, Pipeline(monitor, store, clock)).status()
    assert status.agents == (
        AgentView(
            "ams-1",
            "offline",
            datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
            "acme-ams",
            results_received=42,
            locations=("acme-ams",),
            reason="connection lost",
        ),
    )
    assert status.mqtt == MqttView("127.0.0.1:1883", "disabled")


async def test_status_prefers_ingestions_view_of_agents_and_the_broker(tmp_path: Path) -> None:
    config = _config(tmp_path)
    clock = FixedClock(NOW)
    seen = datetime(2026, 12, 1, 8, 59, tzinfo=UTC)
    live = AgentHealthView("ams-1", "online", seen, 7, ("acme-ams", "acme-rtm"), "")
    async with Store.open(config.storage.url) as store:
        monitor = await restore_monitor(config, store, clock)
        console = ConsoleServiceImpl(
            config,
            Pipeline(monitor, store, clock),
            agents=lambda: [live],
            mqtt=lambda: MqttView("broker:1883", "unreachable", "connection refused"),
        )
        status = await console.status()
    assert status.agents == (
        AgentView(
            "ams-1",
            "online",
            seen,
            "acme-ams, acme-rtm",
            results_received=7,
            locations=("acme-ams", "acme-rtm"),
        ),
    )
    assert status.mqtt == MqttView("broker:1883", "unreachable", "connection refused")


async def test_a_failed_delivery_report_finds_its_message_behind_a_thousand_newer_ones(
    console: ConsoleServiceImpl,
) -> None:
    number = await console.open_question("acme", "Ann", "Can we add a location?")
    store = console._store
    sent_at = NOW.astimezone(UTC)

    def sms(key: str, incident: int | None) -> OutboxMessage:
        return OutboxMessage(
            idempotency_key=key,
            channel="sms",
            recipient="+31612345678",
            kind="opened",
            body=key,
            created_at=sent_at,
            incident_number=incident,
            status="sent",
            provider_id=f"SM-{key}",
            sent_at=sent_at,
        )

    async with store.transaction() as tx:
        await tx.outbox.enqueue(sms("page", number))
        for i in range(1000):  # newer messages: once enough to hide it from the console
            await tx.outbox.enqueue(sms(f"other-{i:04d}", None))

    await console.delivery_status("SM-unknown", "undelivered", "+31612345678", True)
    await console.delivery_status("SM-page", "delivered", "+31612345678", False)
    await console.delivery_status("SM-page", "undelivered", "+31612345678", True)

    detail = await console.incident(number)
    assert detail is not None
    assert [(e.kind, e.detail) for e in detail.timeline if e.kind == "alert_failed"] == [
        ("alert_failed", "opened sms to +31612345678: Twilio reports undelivered")
    ]


async def test_a_question_is_emailed_to_the_support_address_as_a_report(
    console: ConsoleServiceImpl,
) -> None:
    number = await console.open_question("acme", "Ann", "Can we add a location?")
    mails = [
        m for m in await console._store.outbox.list(incident_number=number) if m.channel == "email"
    ]
    assert [(m.recipient, m.kind, m.subject) for m in mails] == [
        ("support@cloudcti.nl", "report", "[ctiwatch] P4 Low incident #1 - ACME B.V.: "
         "Can we add a location?")
    ]  # fmt: skip
    assert "  Automatic:   no, opened by a person\n" in mails[0].body
