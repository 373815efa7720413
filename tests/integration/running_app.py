"""Helpers for the tests that run ``ctiwatch run`` in-process over real sockets.

Real I/O on a real clock: tests poll (small steps, bounded by ``asyncio.timeout``) for what the
running service must produce; nothing waits a fixed time as a clock.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
from ci import unavailable

from ctiwatch.app import Ctiwatch

HOST = "127.0.0.1"
MQTT_PORT = 1883
WAIT_SECONDS = 45.0  # upper bound of every wait; a loaded 2-core machine is slow, not stuck
POLL = 0.05


def broker_or_skip() -> None:
    """Skip when Mosquitto at 127.0.0.1:1883 is unreachable; fail instead under CI."""
    try:
        socket.create_connection((HOST, MQTT_PORT), timeout=2).close()
    except OSError as exc:
        unavailable(f"Mosquitto at {HOST}:{MQTT_PORT} is unreachable ({exc})")


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after WAIT_SECONDS."""
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - polling what real I/O produces
                await asyncio.sleep(POLL)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def start(app: Ctiwatch, stop: asyncio.Event) -> asyncio.Task[None]:
    """``app.run(stop)`` as a task, once the app says it is ready (or why it could not start)."""
    task = asyncio.create_task(app.run(stop))
    ready = asyncio.create_task(app.ready.wait())
    async with asyncio.timeout(WAIT_SECONDS):
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()  # raises why it could not start
    return task


async def api_headers(app: Ctiwatch, role: str = "admin") -> dict[str, str]:
    """``Authorization`` for the running app's API: a new token made through its accounts."""
    assert app.accounts is not None, "the app is not running"
    tokens = await app.accounts.tokens()
    secret, _ = await app.accounts.create_token(f"test-{len(tokens) + 1}", role, by="test")
    return {"Authorization": f"Bearer {secret}"}
