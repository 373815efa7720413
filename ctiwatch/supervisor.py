"""Long-lived tasks kept running: a component that fails is logged, restarted with backoff and
reported (``/healthz``), so nothing a component meets can end the process."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ctiwatch.clock import Clock
from ctiwatch.mqtt.backoff import Backoff

log = logging.getLogger("ctiwatch.supervisor")

# A component that ran this long before failing starts its backoff from the beginning again.
STEADY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    name: str
    running: bool  # False: failed, waiting to be restarted
    restarts: int
    last_error: str = ""
    failed_at: datetime | None = None


class Supervisor:
    """``await supervisor.keep("mqtt", ingestion.run)`` runs the component until it returns,
    restarting it with backoff whenever it raises."""

    def __init__(self, clock: Clock, *, initial: float = 1.0, maximum: float = 60.0) -> None:
        self._clock = clock
        self._initial = initial
        self._maximum = maximum
        self._health: dict[str, ComponentHealth] = {}

    def health(self) -> list[ComponentHealth]:
        return [self._health[name] for name in sorted(self._health)]

    def problems(self) -> list[str]:
        """One line per component that is down now, for ``/healthz``."""
        return [
            f"{c.name}: failed ({c.last_error}); restart {c.restarts + 1} pending"
            for c in self.health()
            if not c.running
        ]

    async def keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        backoff = Backoff(self._initial, self._maximum)
        restarts = 0
        while True:
            started = self._clock.now()
            self._health[name] = ComponentHealth(name, True, restarts)
            try:
                await run()
                return
            except Exception as exc:
                now = self._clock.now()
                if now - started >= STEADY:
                    backoff.reset()
                delay = backoff.next()
                error = f"{type(exc).__name__}: {exc}"[:300]
                self._health[name] = ComponentHealth(name, False, restarts, error, now)
                log.exception(
                    "%s failed; restarting it",
                    name,
                    extra={"component": name, "retry_in_s": round(delay, 2)},
                )
            await self._clock.sleep(delay)
            restarts += 1
