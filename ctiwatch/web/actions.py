"""The incident actions both the console forms and the JSON API perform."""

from __future__ import annotations

from ctiwatch.web.inputs import ActorBody, Body, PriorityBody, ResolveBody, UpdateBody
from ctiwatch.web.service import ConsoleService

# Action name in the URL -> the body it needs.
INCIDENT_ACTIONS: dict[str, type[Body]] = {
    "ack": ActorBody,
    "update": UpdateBody,
    "priority": PriorityBody,
    "resolve": ResolveBody,
    "reopen": ActorBody,
}

# What the console says after an action succeeded (PRG: ``?done=<code>``).
DONE_MESSAGES = {
    "ack": "Incident acknowledged.",
    "update": "Update posted.",
    "priority": "Priority changed.",
    "resolve": "Incident resolved.",
    "reopen": "Incident reopened.",
    "question": "Question opened as a P4 incident.",
    "scheduled": "Maintenance window scheduled.",
    "changed": "Maintenance window changed.",
    "cancelled": "Maintenance window cancelled.",
}


async def perform(
    service: ConsoleService, number: int, action: str, body: Body, actor: str, address: str
) -> None:
    """Run ``action`` on incident ``number`` as ``actor`` (the logged-in user or the token)
    from ``address``; ``body`` was validated with INCIDENT_ACTIONS."""
    if isinstance(body, UpdateBody):
        await service.update(number, actor, body.text, address=address)
    elif isinstance(body, ResolveBody):
        await service.resolve(number, actor, body.reason, force=body.force, address=address)
    elif isinstance(body, PriorityBody):
        await service.change_priority(number, actor, body.priority, body.reason, address=address)
    elif isinstance(body, ActorBody):
        run = {
            "ack": service.acknowledge,
            "reopen": service.reopen,
        }[action]
        await run(number, actor, address=address)
    else:  # pragma: no cover - INCIDENT_ACTIONS lists every body type
        raise TypeError(f"no action for {type(body).__name__}")
