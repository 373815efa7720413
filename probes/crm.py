"""CRM integration: look the caller's number up as the test user; the contact must come back.

The default template (``SPEC``, ``probes.templates.crm`` in the configuration)::

    GET  {base_url}/api/v1/recognition/{customer}/{location}/{user}?number={number}
    [STATUS] == 2xx, has([BODY].contacts) == true
    recognised: [BODY].contacts[*].name contains {contact}

An answer without the expected contact is a miss (the service works, the match failed).
While the template is the default, :func:`check_crm` judges the answer: the built-in check,
whose evidence ctiwatch has always printed (``[STATUS] (200) == 2xx, [CONTACT] (Bob, Carol)
== Alice B.V.``). A configured template that changes any part is judged by its own conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from probes.base import HttpResponse, ProbeContext, ProbeTarget, json_answer

SPEC: Mapping[str, Any] = MappingProxyType(
    {
        "method": "GET",
        "url": "/api/v1/recognition/{customer}/{location}/{user}?number={number}",
        "headers": {},
        "body": None,
        "conditions": ["[STATUS] == 2xx", "has([BODY].contacts) == true"],
        "recognised": "[BODY].contacts[*].name contains {contact}",
    }
)


def check_crm(
    response: HttpResponse, target: ProbeTarget, ctx: ProbeContext, latency: float
) -> tuple[bool, bool | None, str]:
    """A :data:`~probes.base.Check`: 2xx JSON with a ``contacts`` list; the call is recognised
    when the expected contact is in it."""
    answer, failed = json_answer(response)
    if failed is not None:
        return False, None, failed
    status = response.status
    contacts = answer.get("contacts") if isinstance(answer, dict) else None
    if not isinstance(contacts, list):
        return False, None, f"[STATUS] ({status}) == 2xx, [BODY] has a contacts list"
    names = [c.get("name") for c in contacts if isinstance(c, dict)]
    recognised = target.expected_contact in names
    found = ", ".join(str(n) for n in names) if names else "none"
    return (
        True,
        recognised,
        f"[STATUS] ({status}) == 2xx, [CONTACT] ({found}) == {target.expected_contact}",
    )
