"""The real probes against the simulator over the in-memory transport, in virtual time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from classifier.observation import ProbeResult, Service, TargetKey
from ctiwatch.clock import LoopClock, VirtualTimeLoop
from ctiwatch.simulator import SimulatorCore, SimulatorTransport, parse_fault
from probes import PROBES, ProbeContext, ProbeTarget, sequential_ids

T = TypeVar("T")
START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BASE = "http://cloudcti.test"


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``run_in_virtual_time`` on a loop whose timer resolution suits POSIX-second floats.

    ``VirtualTimeLoop`` keeps asyncio's 1e-9 s clock resolution; at ~1.8e9 s a float step is
    2.4e-7 s, so a timer due exactly at the jumped-to instant would never fire. Until
    ctiwatch/clock.py sets ``_clock_resolution`` itself, these tests do.
    """

    def factory() -> VirtualTimeLoop:
        loop = VirtualTimeLoop(START)
        loop._clock_resolution = max(loop._clock_resolution, 1e-6)  # type: ignore[attr-defined]
        return loop

    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def target(service: Service, user: str = "alice") -> ProbeTarget:
    return ProbeTarget(
        key=TargetKey(service, "acme", "acme-ams", user),
        base_url=BASE + "/",
        api_token="secret",
        caller_number="+31201234567",
        expected_contact="ctiwatch test contact",
    )


def probe_once(
    service: Service,
    faults: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    timeout: float = 10.0,
    retries: int = 2,
    rounds: int = 1,
    seed: int = 1,
) -> tuple[list[ProbeResult], float]:
    """Run ``rounds`` probes back to back; return the results and the virtual seconds spent."""

    async def main() -> tuple[list[ProbeResult], float]:
        clock = LoopClock()
        core = SimulatorCore("secret")
        for n, data in enumerate(faults):
            core.faults.add(parse_fault(data, clock.now(), f"f{n + 1}"))
        transport = SimulatorTransport(core, clock, random.Random(seed))
        ctx = ProbeContext(clock, timeout=timeout, retries=retries, new_id=sequential_ids())
        probe = PROBES[service.value]
        results = [await probe(target(service), transport, ctx) for _ in range(rounds)]
        return results, (clock.now() - START).total_seconds()

    return run_virtual(main)


def test_healthy_click2dial_is_ok_and_recognised_with_readable_evidence() -> None:
    (result,), spent = probe_once(Service.CLICK2DIAL)
    assert result == ProbeResult(
        result_id="r1",
        target=TargetKey(Service.CLICK2DIAL, "acme", "acme-ams", "alice"),
        at=START,
        ok=True,
        recognised=True,
        latency_ms=0.0,
        status=201,
        evidence=(
            "POST http://cloudcti.test/api/v1/click2dial/acme/acme-ams/alice/calls "
            "[STATUS] (201) == 2xx, [STATE] (ringing), "
            "[CONTACT] (ctiwatch test contact) == ctiwatch test contact; 0 ms; 1 attempt"
        ),
        attempts=1,
    )
    assert spent == 0.0


def test_healthy_crm_lookup_is_ok_and_recognised() -> None:
    (result,), _ = probe_once(Service.CRM)
    assert (result.ok, result.recognised, result.status, result.attempts) == (True, True, 200, 1)
    assert result.evidence == (
        "GET http://cloudcti.test/api/v1/recognition/acme/acme-ams/alice?number=%2B31201234567 "
        "[STATUS] (200) == 2xx, [CONTACT] (ctiwatch test contact) == ctiwatch test contact; "
        "0 ms; 1 attempt"
    )


def test_outage_fails_after_every_retry_with_the_503_as_evidence() -> None:
    (result,), spent = probe_once(Service.CRM, [{"service": "crm", "kind": "outage"}])
    assert (result.ok, result.recognised, result.status, result.attempts) == (False, None, 503, 3)
    assert result.evidence.endswith("[STATUS] (503) == 2xx; 0 ms; 3 attempts")
    assert spent == 3.0  # backoff 1 s, then 2 s


def test_refused_connection_is_a_failure_without_status() -> None:
    (result,), _ = probe_once(
        Service.CLICK2DIAL, [{"service": "click2dial", "kind": "outage", "refuse": True}]
    )
    assert (result.ok, result.status, result.attempts) == (False, None, 3)
    assert result.evidence.endswith(
        "no answer: connection refused (simulated outage); 0 ms; 3 attempts"
    )


def test_outage_of_the_other_service_does_not_touch_this_one() -> None:
    (result,), _ = probe_once(Service.CLICK2DIAL, [{"service": "crm", "kind": "outage"}])
    assert result.ok is True


def test_unrecognized_rate_gives_misses_not_failures() -> None:
    fault = {"service": "crm", "kind": "unrecognized", "rate": 0.3}
    results, _ = probe_once(Service.CRM, [fault], rounds=100, seed=42)
    assert all(r.ok and r.attempts == 1 for r in results)
    misses = [n for n, r in enumerate(results) if r.is_miss]
    assert len(misses) == 36
    assert misses[:4] == [1, 2, 3, 7]
    assert results[1].evidence.endswith(
        "[CONTACT] (none) == ctiwatch test contact; 0 ms; 1 attempt"
    )


def test_unrecognized_click2dial_call_is_a_miss() -> None:
    (result,), _ = probe_once(
        Service.CLICK2DIAL, [{"service": "click2dial", "kind": "unrecognized"}]
    )
    assert (result.ok, result.recognised, result.is_miss) == (True, False, True)


def test_slow_answer_within_the_timeout_is_ok_with_its_latency() -> None:
    (result,), spent = probe_once(
        Service.CLICK2DIAL, [{"service": "click2dial", "kind": "slow", "latency": "4s"}]
    )
    assert (result.ok, result.recognised, result.latency_ms, result.attempts) == (
        True,
        True,
        4000.0,
        1,
    )
    assert spent == 4.0


def test_slow_answer_beyond_the_timeout_fails_after_every_retry() -> None:
    (result,), spent = probe_once(
        Service.CRM, [{"service": "crm", "kind": "slow", "latency": "20s"}], timeout=10.0
    )
    assert (result.ok, result.status, result.latency_ms, result.attempts) == (
        False,
        None,
        10000.0,
        3,
    )
    assert result.evidence.endswith("timeout after 10 s; 10000 ms; 3 attempts")
    assert spent == 33.0  # 10 s + 1 s backoff + 10 s + 2 s backoff + 10 s


def test_timeout_without_retries_fails_on_the_first_attempt() -> None:
    (result,), spent = probe_once(
        Service.CRM, [{"service": "crm", "kind": "slow", "latency": "11s"}], retries=0
    )
    assert (result.ok, result.attempts) == (False, 1)
    assert spent == 10.0


def test_a_retry_hides_a_single_dropped_request() -> None:
    # The outage lasts half a second: the first attempt gets a 503, the retry after the
    # 1 s backoff gets through.
    window = {
        "service": "crm",
        "kind": "outage",
        "from": START.isoformat(),
        "to": (START + timedelta(milliseconds=500)).isoformat(),
    }
    (result,), spent = probe_once(Service.CRM, [window])
    assert (result.ok, result.recognised, result.status, result.attempts) == (True, True, 200, 2)
    assert result.at == START
    assert result.evidence.endswith("ctiwatch test contact; 0 ms; 2 attempts")
    assert spent == 1.0


def test_retry_latency_is_the_last_attempts_own() -> None:
    # First attempt: 503 after a slow 3 s; the retry (1 s later, outage over) answers at once.
    faults = [
        {"service": "crm", "kind": "outage", "for": "2s"},
        {"service": "crm", "kind": "slow", "latency": "3s", "for": "2s"},
    ]
    (result,), spent = probe_once(Service.CRM, faults)
    assert (result.ok, result.attempts, result.latency_ms) == (True, 2, 0.0)
    assert spent == 4.0
