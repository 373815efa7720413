"""The in-memory transport ``simulate`` uses: probes talk straight to the simulator core.

The probes' own request building and answer checking run unchanged; the answer's latency is
spent with ``clock.sleep``, so in a ``VirtualTimeLoop`` a slow answer costs virtual time only and
the probe's ``asyncio.timeout`` fires in virtual time.
"""

from __future__ import annotations

import random

from ctiwatch.clock import Clock
from ctiwatch.simulator.core import SimulatorCore
from probes.base import HttpRequest, HttpResponse, TransportError


class SimulatorTransport:
    def __init__(
        self,
        core: SimulatorCore,
        clock: Clock,
        rng: random.Random,
        network_latency: float = 0.0,
        source: str = "central",
    ) -> None:
        """``source``: who sends the requests (``central`` or an agent id); a fault with
        ``sources`` is seen only by those."""
        self._core = core
        self._source = source
        self._clock = clock
        self._rng = rng
        self._network_latency = network_latency

    async def send(self, request: HttpRequest) -> HttpResponse:
        clock = self._clock
        latency, response = self._core.handle(request, clock.now(), self._rng, self._source)
        latency += self._network_latency
        if latency > 0.0:
            await clock.sleep(latency)
        if response is None:
            raise TransportError("connection refused (simulated outage)")
        return response
