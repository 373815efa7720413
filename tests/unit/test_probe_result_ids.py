"""Result ids of the live probes: unique, the shape of ``uuid4().hex``, unpredictable across
processes (a keyed hash of a counter, the key drawn once per process and again after fork)."""

from __future__ import annotations

import os
import re

import pytest

from probes import base


def test_result_ids_are_32_hex_digits_and_never_repeat_within_a_process() -> None:
    ids = [base.random_ids() for _ in range(20_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_new_key_gives_a_different_stream_from_the_same_counter() -> None:
    first, second = base._IdStream(), base._IdStream()
    assert [first() for _ in range(3)] != [second() for _ in range(3)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then gone without pytest's teardown
        os.write(write, base.random_ids().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child)
    assert child != base.random_ids()
