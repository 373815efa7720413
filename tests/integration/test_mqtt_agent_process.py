"""``ctiwatch agent`` as a process: its probe results arrive, and its death is noticed.

The agent probes a CloudCTI address where nothing listens, so every round is a failed probe
result — which is a result all the same. Killing the process (no clean disconnect) makes the
broker publish the agent's last will: ``offline``, ``connection lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from running_app import broker_or_skip

from classifier.observation import ProbeResult, Source
from ctiwatch.clock import RealClock
from ctiwatch.config import config_from_data
from ctiwatch.mqtt.ingest import AgentHealth, AgentState, Ingestion

pytestmark = pytest.mark.mqtt

HOST, PORT = "127.0.0.1", 1883
ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


async def test_agent_process_results_arrive_and_its_last_will_says_offline(
    tmp_path: Path,
) -> None:
    broker_or_skip()
    tag = uuid.uuid4().hex[:12]
    data = {
        "topology": {
            "customers": [
                {
                    "id": "acme",
                    "locations": [
                        {"id": "ams", "users": ["alice"]},
                        {"id": "rtm", "users": ["bob"]},
                    ],
                }
            ]
        },
        "probes": {
            "interval": "1s",
            "timeout": "200ms",
            "retries": 0,
            "base_url": f"http://{HOST}:{closed_port()}",
        },
        "mqtt": {
            "enabled": True,
            "topic_prefix": f"ctiwatch-test/{tag}/v1",
            "shared_group": f"g{tag}",
        },
        "agent": {
            "buffer_path": str(tmp_path / "agent.db"),
            "batch_size": 2,
            "batch_interval": "100ms",
        },
        "logging": {"level": "WARNING"},
    }
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(yaml.safe_dump(data))
    config = config_from_data(data)

    received: list[ProbeResult] = []
    states: list[AgentState] = []
    changed = asyncio.Event()

    async def sink(batch: list[ProbeResult]) -> None:
        received.extend(batch)
        changed.set()

    async def on_agent_change(state: AgentState) -> None:
        states.append(state)
        changed.set()

    async def until(condition: object) -> None:
        async with asyncio.timeout(20):
            while not condition():  # type: ignore[operator]
                changed.clear()
                await changed.wait()

    ingestion = Ingestion(
        config.mqtt, config.topology, sink, clock=RealClock(), on_agent_change=on_agent_change
    )
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(ingestion.run())
        async with asyncio.timeout(10):
            await ingestion.subscribed.wait()
        agent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ctiwatch",
            "agent",
            "--config",
            str(config_file),
            "--name",
            "ams-probe",
            "--locations",
            "ams",
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            await until(lambda: len(received) >= 4)
            await until(lambda: any(s.health is AgentHealth.ONLINE for s in states))
        finally:
            with contextlib.suppress(ProcessLookupError):
                agent.send_signal(signal.SIGKILL)
            await agent.wait()
        await until(lambda: any(s.health is AgentHealth.OFFLINE for s in states))
        ingestion.stop()

    assert {(r.target.location, r.target.user, r.source, r.ok) for r in received} == {
        ("ams", "alice", Source.AGENT, False)
    }
    assert {r.target.service.value for r in received} == {"click2dial", "crm"}
    offline = [s for s in states if s.health is AgentHealth.OFFLINE][-1]
    assert (offline.name, offline.reason) == ("ams-probe", "connection lost")
    assert ingestion.counts.rejected == {}
