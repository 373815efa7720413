"""``ctiwatch run`` end to end, over real sockets: simulator, probes, SQLite, fake Twilio/SMTP.

Real I/O on a real clock, so these tests poll (small steps, bounded by ``asyncio.timeout``) for
what the running service must produce; nothing waits a fixed time as a clock.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from running_app import WAIT_SECONDS, api_headers, free_ports, start, until

from ctiwatch.app import Ctiwatch
from ctiwatch.config import Config

ONCALL = "+31612345678"
SECOND_LINE = "+31687654321"
STEP_SECONDS = 3  # escalation step delay (P1)


def config_data(tmp_path: Path) -> dict[str, Any]:
    web, simulator, twilio, smtp = free_ports(4)
    return {
        "topology": {
            "customers": [
                {
                    "id": "acme",
                    "name": "ACME B.V.",
                    "locations": [
                        {"id": "acme-ams", "name": "Amsterdam", "users": ["alice", "bob"]}
                    ],
                },
                {
                    "id": "globex",
                    "name": "Globex",
                    "locations": [{"id": "globex-utr", "users": ["frank"]}],
                },
            ]
        },
        "probes": {
            "base_url": f"http://127.0.0.1:{simulator}",
            "interval": "1s",
            "timeout": "0.5s",
            "retries": 0,
        },
        # Recovery needs 5 good rounds: a round or two between a restart and re-injecting the
        # fault into the (restarted) simulator must not clear the outage.
        "classification": {"failed_rounds": 3, "recovery_rounds": 5},
        "alerting": {
            "oncall": [ONCALL],
            "escalation": [
                {"name": "second line", "after": f"{STEP_SECONDS}s", "numbers": [SECOND_LINE]}
            ],
            "fakes": True,
            "twilio": {
                "base_url": f"http://127.0.0.1:{twilio}",
                "webhook_base_url": f"http://127.0.0.1:{web}",
            },
            "smtp": {"host": "127.0.0.1", "port": smtp},
        },
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/db/ctiwatch.db"},
        "mqtt": {"enabled": False},
        "web": {"host": "127.0.0.1", "port": web},
        "simulator": {"enabled": True, "host": "127.0.0.1", "port": simulator},
    }


async def inject_outage(http: aiohttp.ClientSession, app: Ctiwatch) -> None:
    fault = {"service": "click2dial", "customer": "acme", "location": "acme-ams", "kind": "outage"}
    async with http.post(f"{app.simulator_url}/admin/faults", json=fault) as response:
        assert response.status == 201, await response.text()


async def incident_json(http: aiohttp.ClientSession, app: Ctiwatch, number: int) -> Any:
    async with http.get(f"{app.web_url}/api/v1/incidents/{number}") as response:
        if response.status == 404:
            return None
        assert response.status == 200, await response.text()
        return await response.json()


async def probed_past(app: Ctiwatch, instant: datetime) -> bool:
    """True once a click2dial round of acme-ams scheduled after ``instant`` is stored."""
    assert app.store is not None
    latest = await app.store.results.latest("acme", "acme-ams")
    return any(r.target.service.value == "click2dial" and r.at > instant for r in latest)


async def test_location_outage_alerts_ack_by_sms_stops_escalation_and_survives_restart(
    tmp_path: Path,
) -> None:
    config = Config.model_validate(config_data(tmp_path))
    stop = asyncio.Event()
    app = Ctiwatch(config)
    task = await start(app, stop)
    try:
        async with aiohttp.ClientSession(headers=await api_headers(app)) as http:
            await inject_outage(http, app)
            twilio, smtp = app.fake_twilio, app.fake_smtp
            assert twilio is not None and smtp is not None

            async def report_mailed() -> bool:
                return any("incident #1" in m.subject for m in smtp.messages)

            async def sms_and_call() -> bool:
                sms = any(m.to == ONCALL and "ACK 1" in m.body for m in twilio.messages)
                return sms and any(c.to == ONCALL for c in twilio.calls)

            await until(report_mailed, "the e-mail report of incident 1")
            await until(sms_and_call, "the on-call SMS and voice call of incident 1")
            mail = next(m for m in smtp.messages if "incident #1" in m.subject)
            assert mail.rcpt_tos == ("support@cloudcti.nl",)
            assert "P1" in mail.subject and "ACME B.V." in mail.subject

            reply = await twilio.reply_sms(ONCALL, "ACK 1")
            assert reply.status == 200
            assert "Incident 1 acknowledged" in reply.body
            incident = await incident_json(http, app, 1)
            assert incident["status"] == "acknowledged"
            assert incident["priority"] == 1
            assert incident["customer"] == "acme"
            assert incident["scope"][0]["service"] == "click2dial"
            assert incident["scope"][0]["user"] is None
            kinds = [entry["kind"] for entry in incident["timeline"]]
            assert kinds[0] == "opened"
            assert "alert_sent" in kinds and "acknowledged" in kinds
            acked_at = datetime.fromisoformat(incident["acknowledged_at"])

            # Long enough for two more escalation steps to have come due: none may be paged.
            after_steps = acked_at + timedelta(seconds=2 * STEP_SECONDS + 1)

            async def past_steps() -> bool:
                return await probed_past(app, after_steps)

            await until(past_steps, "probe rounds past the escalation steps")
            assert app.store is not None
            escalated = [
                m
                for m in await app.store.outbox.list(incident_number=1, limit=1000)
                if m.kind == "escalated" and m.created_at > acked_at
            ]
            assert escalated == []
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_SECONDS)

    # Restart on the same database; the fault still holds (re-injected into the new simulator).
    stop = asyncio.Event()
    app = Ctiwatch(config)
    task = await start(app, stop)
    try:
        async with aiohttp.ClientSession(headers=await api_headers(app)) as http:
            await inject_outage(http, app)
            assert app.monitor is not None
            restarted = app.clock.now()
            later = restarted + timedelta(seconds=config.classification.failed_rounds + 2)

            async def rounds_after_restart() -> bool:
                return await probed_past(app, later)

            await until(rounds_after_restart, "probe rounds after the restart")
            assert app.store is not None
            latest = await app.store.results.latest("acme", "acme-ams")
            assert [r.ok for r in latest if r.target.service.value == "click2dial"] == [
                False,
                False,
            ]
            assert await incident_json(http, app, 2) is None
            incident = await incident_json(http, app, 1)
            assert incident["status"] == "acknowledged"
            assert incident["resolved_at"] is None
            still_open = app.monitor.engine.open_incident("acme")
            assert still_open is not None and still_open.number == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_SECONDS)


async def test_an_unanswered_call_pages_the_next_escalation_step_at_once(tmp_path: Path) -> None:
    data = config_data(tmp_path)
    # A step delay far beyond the test: only the unanswered call can page the second line.
    data["alerting"]["escalation"][0]["after"] = "1h"
    app = Ctiwatch(Config.model_validate(data))
    stop = asyncio.Event()
    task = await start(app, stop)
    try:
        async with aiohttp.ClientSession(headers=await api_headers(app)) as http:
            await inject_outage(http, app)
            twilio = app.fake_twilio
            assert twilio is not None

            async def called() -> bool:
                return any(c.to == ONCALL for c in twilio.calls)

            await until(called, "the on-call voice call of incident 1")
            call = next(c for c in twilio.calls if c.to == ONCALL)
            answer = await twilio.send_status(call.sid, "no-answer")
            assert answer.status in (200, 204)

            async def second_line_paged() -> bool:
                return any(m.to == SECOND_LINE for m in twilio.messages)

            await until(second_line_paged, "the second line's page after the unanswered call")
            incident = await incident_json(http, app, 1)
            kinds = [entry["kind"] for entry in incident["timeline"]]
            assert "alert_failed" in kinds
            hastened = kinds.index("escalation_hastened")
            assert kinds[hastened + 1] == "escalated"
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_SECONDS)


async def test_run_command_serves_healthz_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    data = config_data(tmp_path)
    data["probes"]["interval"] = "2s"
    path = tmp_path / "ctiwatch.yaml"
    path.write_text(yaml.safe_dump(data))
    web = data["web"]["port"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ctiwatch",
        "run",
        "--config",
        str(path),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                if process.returncode is not None:
                    pytest.fail(f"ctiwatch run exited early with {process.returncode}")
                try:
                    async with http.get(f"http://127.0.0.1:{web}/healthz") as response:
                        return response.status == 200 and await response.text() == "ok"
                except aiohttp.ClientError:
                    return False

            await until(healthy, "GET /healthz of the ctiwatch run process")
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), WAIT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    out, err = stdout.decode(), stderr.decode()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "Traceback" not in out
    assert f"status page http://127.0.0.1:{web}/" in out
    assert "ctiwatch stopped" in out
    assert (tmp_path / "db" / "ctiwatch.db").exists()
