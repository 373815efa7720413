"""Held pages live (sla.md "Paging"): an on-call SMS held outside support hours is stored with
the step that held it, survives a restart, and goes out once, as one digest per person, at the
opening of support hours; agents' pages follow what people decided (``ctiwatch agents``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctiwatch.app import restore_monitor
from ctiwatch.cli import main
from ctiwatch.clock import FixedClock
from ctiwatch.config import Config
from ctiwatch.persist import Pipeline
from ctiwatch.storage import AgentRecord, AuditEntry, Store

ONCALL = ["+31611111111", "+31622222222"]
NIGHT = datetime(2026, 12, 1, 21, 0, tzinfo=UTC)  # Tue 22:00 Amsterdam
OPENING = datetime(2026, 12, 2, 7, 30, tzinfo=UTC)  # Wed 08:30 Amsterdam


def config(storage_url: str) -> Config:
    return Config.model_validate(
        {
            "topology": {
                "customers": [{"id": "acme", "locations": [{"id": "acme-ams", "users": ["alice"]}]}]
            },
            "alerting": {"oncall": ONCALL},
            "storage": {"url": storage_url},
        }
    )


async def test_a_held_sms_survives_a_restart_and_goes_out_once_at_the_opening(
    storage_url: str,
) -> None:
    cfg, clock = config(storage_url), FixedClock(NIGHT)
    async with Store.open(storage_url) as store:
        pipeline = Pipeline(await restore_monitor(cfg, store, clock), store, clock)
        monitor = pipeline.monitor
        await pipeline.act(lambda now: monitor.open_question("acme", now, "Sanne", "Slow CRM?"))

        assert [(m.channel, m.kind) for m in await store.outbox.list()] == [("email", "report")]
        assert [(m.to, m.kind, m.at) for m in await store.held.list()] == [
            (ONCALL[0], "opened", NIGHT),
            (ONCALL[1], "opened", NIGHT),
        ]

        clock.set(OPENING - timedelta(hours=1))
        restarted = Pipeline(await restore_monitor(cfg, store, clock), store, clock)
        assert restarted.monitor.next_due() == OPENING
        clock.set(OPENING)
        await restarted.tick()

        sms = sorted(
            (m for m in await store.outbox.list() if m.channel == "sms"), key=lambda m: m.recipient
        )
        assert [(m.recipient, m.kind, m.created_at) for m in sms] == [
            (ONCALL[0], "opened", OPENING),
            (ONCALL[1], "opened", OPENING),
        ]
        assert sms[0].body.startswith("CTIWATCH held since Tue 01 Dec 22:00: CTIWATCH P4 #1 ")
        assert await store.held.list() == []

        again = Pipeline(await restore_monitor(cfg, store, clock), store, clock)
        await again.tick()
        assert len([m for m in await store.outbox.list() if m.channel == "sms"]) == 2


async def _agent(storage_url: str) -> AgentRecord | None:
    async with Store.open(storage_url) as store:
        if await store.agents.get("ams-agent-1") is None:
            await store.agents.upsert(
                AgentRecord("ams-agent-1", NIGHT, "online", {"health": "online"})
            )
        return await store.agents.get("ams-agent-1")


def test_people_retire_and_silence_an_agent_with_ctiwatch_agents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "sanne")  # who decides: the system's user, never a typed name
    storage_url = f"sqlite+aiosqlite:///{tmp_path}/ctiwatch.db"
    file = tmp_path / "ctiwatch.yaml"
    file.write_text(f"storage:\n  url: {storage_url}\n", encoding="utf-8")
    asyncio.run(_agent(storage_url))

    def run(*args: str) -> int:
        return main(["agents", *args, "--config", str(file)])

    with pytest.raises(SystemExit):
        run("retire", "ams-agent-1", "--as", "Sanne")
    capsys.readouterr()
    assert run("retire", "ams-agent-1", "--reason", "site closed") == 0
    assert run("retire", "rtm-agent-9") == 1
    assert run("silence", "ams-agent-1", "--until", "tomorrow") == 2
    assert run("silence", "ams-agent-1", "--until", "2020-01-01") == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == ["agent ams-agent-1 retired: its going offline pages no one"]
    assert err.splitlines() == [
        "error: no probe agent 'rtm-agent-9' has ever reported",
        "error: --until: 'tomorrow' is not an ISO 8601 date or date-time",
        "error: --until: '2020-01-01' is not in the future",
    ]
    assert run("list") == 0
    assert "retired by sanne (cli): site closed (pages no one)" in capsys.readouterr().out

    assert run("silence", "ams-agent-1", "--until", "2099-01-01T12:00") == 0
    assert capsys.readouterr().out == "agent ams-agent-1 silenced until 2099-01-01T12:00+01:00\n"
    record = asyncio.run(_agent(storage_url))
    assert record is not None
    assert record.meta["health"] == "online"
    assert record.meta["paging"]["retired"] is False
    assert record.meta["paging"]["silenced_until"] == "2099-01-01T11:00:00+00:00"
    assert run("activate", "ams-agent-1") == 0
    # Every decision is on the audit log with the change; the refused ones are not.
    audit = asyncio.run(_audit(storage_url))
    assert [(a.actor, a.action, a.target, a.detail) for a in reversed(audit)] == [
        ("sanne (cli)", "agent.retire", "agent ams-agent-1", "site closed"),
        ("sanne (cli)", "agent.silence", "agent ams-agent-1", "until 2099-01-01T12:00+01:00"),
        ("sanne (cli)", "agent.activate", "agent ams-agent-1", ""),
    ]


async def _audit(storage_url: str) -> list[AuditEntry]:
    async with Store.open(storage_url) as store:
        return await store.accounts.audit_log()
