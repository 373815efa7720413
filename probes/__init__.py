"""Probes: one small callable per kind, a registry, the transports and the scheduler.

``Probe = Callable[[ProbeTarget, Transport, ProbeContext], Awaitable[ProbeResult]]``; see
:mod:`probes.base` for the shared values and :mod:`probes.scheduler` for the schedule.
"""

from probes.base import (
    Attempt,
    HttpRequest,
    HttpResponse,
    Probe,
    ProbeContext,
    ProbeTarget,
    Transport,
    TransportError,
    random_ids,
    run_http_probe,
    sequential_ids,
)
from probes.http import make_http_probe, probe_http
from probes.registry import PROBES, probe_click2dial, probe_crm
from probes.scheduler import ResultSink, Scheduler, SchedulerStats, spread_offset
from probes.transport import AiohttpTransport
from sla.clock import Clock

__all__ = [
    "PROBES",
    "AiohttpTransport",
    "Attempt",
    "Clock",
    "HttpRequest",
    "HttpResponse",
    "Probe",
    "ProbeContext",
    "ProbeTarget",
    "ResultSink",
    "Scheduler",
    "SchedulerStats",
    "Transport",
    "TransportError",
    "make_http_probe",
    "probe_click2dial",
    "probe_crm",
    "probe_http",
    "random_ids",
    "run_http_probe",
    "sequential_ids",
    "spread_offset",
]
