"""``ctiwatch run`` sets glibc's allocator for a long-running service: two arenas and a fixed
threshold for mapping large blocks alone; the operator's environment wins."""

from __future__ import annotations

import platform
import subprocess
import sys
from types import SimpleNamespace

import pytest

from ctiwatch.memory import ARENAS, M_ARENA_MAX, M_MMAP_THRESHOLD, MMAP_THRESHOLD, tune_allocator


def fake_libc(answer: int = 1) -> tuple[SimpleNamespace, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []

    def mallopt(parameter: int, value: int) -> int:
        calls.append((parameter, value))
        return answer

    return SimpleNamespace(mallopt=mallopt), calls


def test_two_arenas_and_a_fixed_mapping_threshold_are_set() -> None:
    libc, calls = fake_libc()
    applied = tune_allocator({}, libc)
    assert applied == ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"]
    assert calls == [(M_ARENA_MAX, ARENAS), (M_MMAP_THRESHOLD, MMAP_THRESHOLD)]


def test_the_operators_own_setting_in_the_environment_wins() -> None:
    libc, calls = fake_libc()
    assert tune_allocator({"MALLOC_ARENA_MAX": "4"}, libc) == ["MALLOC_MMAP_THRESHOLD_"]
    assert calls == [(M_MMAP_THRESHOLD, MMAP_THRESHOLD)]


def test_a_c_library_without_mallopt_or_refusing_it_changes_nothing() -> None:
    assert tune_allocator({}, SimpleNamespace()) == []
    libc, _ = fake_libc(answer=0)
    assert tune_allocator({}, libc) == []


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_this_machines_glibc_takes_both_settings() -> None:
    # In a process of its own: the test session keeps glibc's defaults.
    asked = "from ctiwatch.memory import tune_allocator; print(tune_allocator({}))"
    done = subprocess.run([sys.executable, "-c", asked], capture_output=True, text=True)
    assert done.stdout.strip() == "['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_']", done.stderr


def test_ctiwatch_run_tunes_the_allocator_before_anything_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse
    from collections.abc import Coroutine
    from typing import Any

    from ctiwatch.commands import run as run_command

    order: list[str] = []
    monkeypatch.setattr(run_command, "tune_allocator", lambda: order.append("tune") or [])
    real_load = run_command.load_config

    def load(path: str | None) -> Any:
        order.append("config")
        return real_load(path)

    def no_service(coroutine: Coroutine[Any, Any, int]) -> int:
        coroutine.close()
        order.append("service")
        return 0

    monkeypatch.setattr(run_command, "load_config", load)
    monkeypatch.setattr(run_command, "setup_logging", lambda *a, **k: order.append("logging"))
    monkeypatch.setattr(run_command, "_CHATTY", ())
    monkeypatch.setattr(run_command.asyncio, "run", no_service)
    assert run_command.run_command(argparse.Namespace(config=None)) == 0
    assert order == ["tune", "config", "logging", "service"]
