"""The one ``Clock`` protocol: what a service needs to know about time.

Pure code never reads a clock: it takes ``now`` as an argument. Services (probes, the outbox
sender, ingestion, the web console) get a ``Clock``; the shell provides the implementations
(``ctiwatch.clock``: the wall clock, the event loop's virtual clock, a fixed clock for tests).
It lives here, at the bottom of the core, so that every layer may name it without importing
the shell: ``probes`` and ``alerting`` never import ``ctiwatch``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """What services need to know about time."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Wait until ``when`` (returns at once if it has passed)."""
        ...
