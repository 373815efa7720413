"""Live updates over Server-Sent Events: ``GET /events``.

Each stream sends the state version (``event: state``, ``id`` and ``data`` the version) when
it opens and whenever the pipeline bumps it, at most one event per ``gap`` seconds per stream
(a burst of changes is one event with the newest version), and a comment line as heartbeat
after ``heartbeat`` seconds of quiet so that proxies and browsers keep it open. The page's
script then fetches the changed fragment (``/fragments/status``), rendered once per state.

Bounded: at most ``limit`` streams at once (the next is answered 503 with ``Retry-After``);
every stream ends (cleanly, with the end of its response) when the app shuts down.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aiohttp import web

log = logging.getLogger(__name__)

MAX_STREAMS = 200
HEARTBEAT_SECONDS = 15.0
GAP_SECONDS = 1.0
RETRY_MS = 5000  # how long a browser waits before it reconnects


class Versions(Protocol):
    """The state version the pipeline bumps (``ctiwatch.readmodel.StateVersion``)."""

    @property
    def value(self) -> int: ...

    async def wait_after(self, seen: int, within: float) -> int: ...


class EventStreams:
    def __init__(
        self,
        versions: Versions,
        *,
        limit: int = MAX_STREAMS,
        heartbeat: float = HEARTBEAT_SECONDS,
        gap: float = GAP_SECONDS,
    ) -> None:
        self._versions = versions
        self._limit = limit
        self._heartbeat = heartbeat
        self._gap = gap
        self._streams: set[asyncio.Task[object]] = set()
        self._closing = asyncio.Event()

    @property
    def open(self) -> int:
        return len(self._streams)

    def install(self, app: web.Application) -> None:
        app.add_routes([web.get("/events", self.stream)])
        app.on_shutdown.append(self.close)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if len(self._streams) >= self._limit:
            return web.Response(
                status=503,
                text="too many live streams; reload the page later\n",
                headers={"Retry-After": "30"},
            )
        task = asyncio.current_task()
        assert task is not None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        self._streams.add(task)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            seen = -1
            while not closing.done():
                waiting = asyncio.ensure_future(self._versions.wait_after(seen, self._heartbeat))
                await asyncio.wait({waiting, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not waiting.done():
                    waiting.cancel()
                    break
                version = waiting.result()
                if version > seen:
                    seen = version
                    await response.write(
                        f"id: {version}\nevent: state\ndata: {version}\n\n".encode()
                    )
                    if self._gap:
                        await asyncio.wait({closing}, timeout=self._gap)
                else:
                    await response.write(b": heartbeat\n\n")
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away
        finally:
            closing.cancel()
            self._streams.discard(task)
        return response

    async def close(self, app: web.Application | None = None) -> None:
        """End every stream (the app is shutting down): each one ends its response cleanly."""
        self._closing.set()
        for _ in range(100):
            if not self._streams:
                return
            await asyncio.sleep(0.01)
