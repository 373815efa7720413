"""When the contingency line is called, and which line answers (section 4 of the SLA). Pure.

The 24x7 contingency line is called outside support hours when

* the number of end-customers with an open P1 incident reaches
  ``policy.contingency_min_p1_customers`` (default 2): once, on the step that makes the count
  reach it (it calls again only after the count fell below and reached it anew), about the
  incident whose P1 made the count; or
* an incident's repair deadline (MTTR) expires: once per repair breach, about that incident.

Inside support hours the same events go to the normal support line (:func:`contingency_call`).
The shell counts, this module decides; :func:`alerting.routing.route` turns each
:class:`Contingency` trigger into messages (the line, plus SMS/voice to on-call).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from alerting.model import RoutingPolicy, Trigger, TriggerKind


@dataclass(frozen=True, slots=True)
class RepairBreach:
    """An incident's repair deadline (MTTR) expired at ``at``."""

    incident: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Contingency:
    """Call ``call`` about ``incident``, for the reason in ``trigger.reason``."""

    incident: int
    trigger: Trigger
    call: str


def contingency_call(policy: RoutingPolicy, in_support_hours: bool) -> str:
    """The line a contingency goes to: the support line inside support hours, else the 24x7
    contingency line."""
    return policy.support_line if in_support_hours else policy.contingency_line


def contingency_triggers(
    policy: RoutingPolicy,
    now: datetime,
    *,
    in_support_hours: bool,
    p1_customers_before: int,
    p1_customers: int,
    p1_incidents: Sequence[int] = (),
    repair_breaches: Sequence[RepairBreach] = (),
) -> list[Contingency]:
    """The contingency calls of one step of the monitor, per the rules in this module's
    docstring: one per repair breach (in order, at the breach's instant), then the one of the
    P1 count if this step made it reach the threshold.

    ``p1_customers_before``/``p1_customers``: end-customers with an open P1 before and after the
    step; ``p1_incidents``: the incidents that had a P1 event in the step, in order (the last
    one made the count).
    """
    call = contingency_call(policy, in_support_hours)
    calls = [
        Contingency(
            breach.incident,
            Trigger(
                TriggerKind.CONTINGENCY,
                breach.at,
                reason=f"the repair deadline (MTTR) of incident {breach.incident} expired",
            ),
            call,
        )
        for breach in repair_breaches
    ]
    threshold = policy.contingency_min_p1_customers
    if p1_customers_before < threshold <= p1_customers and p1_incidents:
        reason = f"{p1_customers} end-customers have an open P1 incident"
        trigger = Trigger(TriggerKind.CONTINGENCY, now, generation=p1_customers, reason=reason)
        calls.append(Contingency(p1_incidents[-1], trigger, call))
    return calls
