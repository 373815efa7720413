"""The probes over real HTTP: AiohttpTransport against the simulator app on a local port.

The server runs on a ``FixedClock``, so a ``slow`` fault advances that clock instead of
waiting; nothing here waits for wall-clock time.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from classifier.observation import Service, TargetKey
from ctiwatch.cli import main
from ctiwatch.clock import FixedClock, RealClock
from ctiwatch.simulator import SimulatorCore, SimUser, make_app
from probes import (
    AiohttpTransport,
    ProbeContext,
    ProbeTarget,
    make_http_probe,
    probe_click2dial,
    probe_crm,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    base_url: str
    clock: FixedClock
    session: aiohttp.ClientSession
    transport: AiohttpTransport


@pytest.fixture
async def simulator() -> AsyncIterator[Running]:
    clock = FixedClock(NOW)
    core = SimulatorCore("secret", [SimUser("acme", "acme-ams", "alice")])
    runner = web.AppRunner(make_app(core, clock, random.Random(1)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    connector = aiohttp.TCPConnector(limit=50)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            yield Running(f"http://{host}:{port}", clock, session, AiohttpTransport(session))
    finally:
        await runner.cleanup()


def target(base_url: str, service: Service) -> ProbeTarget:
    return ProbeTarget(
        TargetKey(service, "acme", "acme-ams", "alice"),
        base_url,
        "secret",
        "+31201234567",
        "ctiwatch test contact",
    )


def context() -> ProbeContext:
    # Backoff 0: retries go at once, so no test waits for wall-clock time.
    return ProbeContext(RealClock(), timeout=5.0, retries=2, retry_backoff=0.0)


async def add_fault(running: Running, **fault: object) -> None:
    async with running.session.post(f"{running.base_url}/admin/faults", json=fault) as response:
        assert response.status == 201, await response.text()


async def test_click2dial_and_crm_probes_succeed_over_http(simulator: Running) -> None:
    call = await probe_click2dial(
        target(simulator.base_url, Service.CLICK2DIAL), simulator.transport, context()
    )
    lookup = await probe_crm(
        target(simulator.base_url, Service.CRM), simulator.transport, context()
    )
    assert (call.ok, call.recognised, call.status, call.attempts) == (True, True, 201, 1)
    assert (lookup.ok, lookup.recognised, lookup.status, lookup.attempts) == (True, True, 200, 1)
    assert lookup.evidence.startswith(
        f"GET {simulator.base_url}/api/v1/recognition/acme/acme-ams/alice?number=%2B31201234567 "
        "[STATUS] (200) == 2xx, [CONTACT] (ctiwatch test contact) == ctiwatch test contact; "
    )


async def test_outage_injected_over_the_admin_api_fails_the_probe(simulator: Running) -> None:
    await add_fault(simulator, service="crm", kind="outage")
    result = await probe_crm(
        target(simulator.base_url, Service.CRM), simulator.transport, context()
    )
    assert (result.ok, result.status, result.attempts) == (False, 503, 3)
    assert "[STATUS] (503) == 2xx" in result.evidence


async def test_unrecognized_fault_over_http_is_a_miss(simulator: Running) -> None:
    await add_fault(simulator, service="click2dial", kind="unrecognized")
    result = await probe_click2dial(
        target(simulator.base_url, Service.CLICK2DIAL), simulator.transport, context()
    )
    assert (result.ok, result.recognised, result.is_miss) == (True, False, True)


async def test_slow_fault_over_http_answers_on_the_servers_clock(simulator: Running) -> None:
    await add_fault(simulator, service="crm", kind="slow", latency="4s")
    result = await probe_crm(
        target(simulator.base_url, Service.CRM), simulator.transport, context()
    )
    assert (result.ok, result.attempts) == (True, 1)
    assert simulator.clock.now() == NOW + timedelta(seconds=4)


async def test_refusing_outage_is_a_failure_with_no_answer(simulator: Running) -> None:
    await add_fault(simulator, service="click2dial", kind="outage", refuse=True)
    result = await probe_click2dial(
        target(simulator.base_url, Service.CLICK2DIAL), simulator.transport, context()
    )
    assert (result.ok, result.status, result.attempts) == (False, None, 3)
    assert "no answer: server closed the connection without an answer" in result.evidence


async def test_nothing_listening_is_a_failure_naming_the_address(simulator: Running) -> None:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    result = await probe_crm(
        target(f"http://127.0.0.1:{port}", Service.CRM), simulator.transport, context()
    )
    assert (result.ok, result.status) == (False, None)
    assert f"no answer: cannot connect to 127.0.0.1:{port}" in result.evidence


async def test_http_probe_checks_the_health_route(simulator: Running) -> None:
    probe = make_http_probe("/health", body_contains='"ok"')
    result = await probe(target(simulator.base_url, Service.CRM), simulator.transport, context())
    assert (result.ok, result.status, result.recognised) == (True, 200, None)


# --- the CLI against a standalone simulator ----------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """``ctiwatch simulator serve`` in a subprocess; yields its config file."""
    config = tmp_path / "ctiwatch.yaml"
    # The simulator knows its topology: faults naming other customers are refused.
    topology = (
        "topology:\n  customers:\n    - id: acme\n      locations:\n"
        "        - id: acme-ams\n          users: [alice, bob]\n"
    )
    config.write_text(f"simulator:\n  port: {free_port()}\n{topology}", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "ctiwatch", "simulator", "serve", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the socket listens
        assert line.startswith("simulator listening on http://127.0.0.1:"), line
        yield config
    finally:
        process.terminate()
        process.wait(timeout=10)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``ctiwatch simulator ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main(["simulator", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_injects_lists_and_clears_faults_on_a_running_simulator(
    served: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(served)
    started = time.time()
    code, out, err = cli(
        capsys,
        "fault", "--config", config, "--service", "crm", "--kind", "unrecognized",
        "--customer", "acme", "--users", "alice,bob", "--rate", "0.5", "--for", "10m",
    )  # fmt: skip
    assert code == 0, err
    fault = json.loads(out)
    assert {k: fault[k] for k in ("id", "service", "kind", "customer", "users", "rate")} == {
        "id": "f1",
        "service": "crm",
        "kind": "unrecognized",
        "customer": "acme",
        "users": ["alice", "bob"],
        "rate": 0.5,
    }
    ends = datetime.fromisoformat(fault["to"]).timestamp()
    assert started + 590 < ends < time.time() + 610

    code, out, _ = cli(capsys, "faults", "--config", config)
    assert [f["id"] for f in json.loads(out)["faults"]] == ["f1"]

    code, _, err = cli(capsys, "fault", "--config", config, "--service", "crm", "--kind", "slow")
    assert code == 2
    assert err == "error: latency: a slow fault needs a positive latency such as '20s'\n"

    code, _, err = cli(
        capsys, "fault", "--config", config, "--service", "crm", "--kind", "outage",
        "--customer", "acmee",
    )  # fmt: skip
    assert (code, err) == (2, "error: customer: unknown customer 'acmee'\n")

    code, _, err = cli(
        capsys, "fault", "--config", config, "--service", "crm", "--kind", "slow",
        "--latency", "99999999999999d",
    )  # fmt: skip
    assert (code, err) == (2, "error: latency: must be at most 1h\n")

    code, out, _ = cli(capsys, "clear", "--config", config)
    assert (code, json.loads(out)) == (0, {"cleared": 1})


def test_cli_says_when_no_simulator_is_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ctiwatch.yaml"
    port = free_port()
    config.write_text(f"simulator:\n  port: {port}\n", encoding="utf-8")
    code, _, err = cli(capsys, "clear", "--config", str(config))
    assert code == 1
    assert err.startswith(f"error: cannot reach the simulator at http://127.0.0.1:{port}")


async def test_a_fault_for_one_agent_fails_that_agents_probe_and_not_the_central_one(
    simulator: Running,
) -> None:
    await add_fault(simulator, service="crm", kind="outage", sources=["ams-agent-1"])
    crm = target(simulator.base_url, Service.CRM)
    agent = replace(context(), source="ams-agent-1")
    seen_by_agent = await probe_crm(crm, simulator.transport, agent)
    seen_centrally = await probe_crm(crm, simulator.transport, context())
    assert (seen_by_agent.ok, seen_by_agent.status, seen_by_agent.attempts) == (False, 503, 3)
    assert (seen_centrally.ok, seen_centrally.status, seen_centrally.attempts) == (True, 200, 1)
    other_agent = await probe_crm(crm, simulator.transport, replace(context(), source="utr-1"))
    assert (other_agent.ok, other_agent.status) == (True, 200)
