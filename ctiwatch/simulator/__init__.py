"""A built-in stand-in for CloudCTI, with faults injected at run time.

CloudCTI's own API is not public; the routes follow the usual shape of click-to-dial and
caller-recognition APIs (bearer token, a call resource with an id and a state, a lookup that
answers a list of contacts). Every API route needs ``Authorization: Bearer <probes.api_token>``
(else 401) and, unless the simulator runs in open mode, a known customer/location/user (else
404).

Click2Dial — start a call as a user::

    POST /api/v1/click2dial/{customer}/{location}/{user}/calls
         {"number": "+31201234567", "extension": "201"}            (extension optional)
    201  {"call_id": "call-000001", "state": "ringing", "number": "+31201234567",
          "contact": {"name": "ctiwatch test contact", "number": "+31201234567"} | null}
    400  {"error": "number: is required"}

CRM integration (CloudCTI's recognition service) — look a caller's number up::

    GET  /api/v1/recognition/{customer}/{location}/{user}?number=%2B31201234567
    200  {"number": "+31201234567",
          "contacts": [{"name": "ctiwatch test contact", "number": "+31201234567"}]}
         (``contacts`` is empty when the number is not recognised)

Health (no token)::

    GET  /health  ->  200 {"status": "ok"}

Faults (see :mod:`ctiwatch.simulator.faults`): an ``outage`` answers 503
``{"error": "service unavailable"}`` (or, with ``refuse``, drops the connection unanswered);
``unrecognized`` answers correctly without the contact; ``slow`` answers after ``latency``.

Who asks: probers name themselves in the ``User-Agent`` (``ctiwatch/0.1.0 (central)``,
``ctiwatch/0.1.0 (agent ams-agent-1)``, see :func:`probes.base.user_agent`); a fault with
``sources`` hits only the requests of those sources. Any other User-Agent counts as the central
prober's.

Admin API (no token; bind the simulator to a local address)::

    POST   /admin/faults      {"service": "crm", "kind": "outage|unrecognized|slow",
                               "customer"?: "acme", "location"?: "acme-ams",
                               "users"?: ["alice"], "rate"?: 0.3, "latency"?: "20s",
                               "from"?: ISO 8601, "to"?: ISO 8601, "for"?: "10m",
                               "refuse"?: false, "sources"?: ["ams-agent-1"]}
                              -> 201 {"id": "f1", ...}; bad input -> 400 {"errors": [...]}
                                 with one line per problem, naming the field
    GET    /admin/faults      -> 200 {"faults": [...]}
    DELETE /admin/faults/{id} -> 204, or 404 {"errors": [...]}
    DELETE /admin/faults      -> 200 {"cleared": n}
"""

from ctiwatch.simulator.app import make_app
from ctiwatch.simulator.core import (
    DEFAULT_CONTACT,
    DEFAULT_NUMBER,
    Reply,
    SimulatorCore,
    SimUser,
    users_from_topology,
)
from ctiwatch.simulator.faults import (
    HEALTHY,
    Behaviour,
    Fault,
    FaultKind,
    FaultPlan,
    FaultSpec,
    Outcome,
    decide,
    parse_fault,
)
from ctiwatch.simulator.transport import SimulatorTransport

__all__ = [
    "DEFAULT_CONTACT",
    "DEFAULT_NUMBER",
    "HEALTHY",
    "Behaviour",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultSpec",
    "Outcome",
    "Reply",
    "SimUser",
    "SimulatorCore",
    "SimulatorTransport",
    "decide",
    "make_app",
    "parse_fault",
    "users_from_topology",
]
