"""Click2Dial: start a call as the test user and check that the platform took it.

The default template (``SPEC``, ``probes.templates.click2dial`` in the configuration)::

    POST {base_url}/api/v1/click2dial/{customer}/{location}/{user}/calls
         {"number": "{number}", "extension": "{extension}"}
    [STATUS] == 2xx, [BODY].call_id != "", [BODY].state == any(dialing, ringing, connected)
    recognised: [BODY].contact.name == {contact}

While the template is the default, :func:`check_click2dial` judges the answer: the built-in
check, whose evidence ctiwatch has always printed (``[STATUS] (201) == 2xx, [STATE] (ringing),
[CONTACT] (Bob) == Alice B.V.``). A configured template that changes any part is judged by
its own conditions, each printing its actual value (``probes.template``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from probes.base import HttpResponse, ProbeContext, ProbeTarget, json_answer

CALL_STATES = frozenset({"dialing", "ringing", "connected"})

SPEC: Mapping[str, Any] = MappingProxyType(
    {
        "method": "POST",
        "url": "/api/v1/click2dial/{customer}/{location}/{user}/calls",
        "headers": {},
        "body": {"number": "{number}", "extension": "{extension}"},
        "conditions": [
            "[STATUS] == 2xx",
            '[BODY].call_id != ""',
            "[BODY].state == any(dialing, ringing, connected)",
        ],
        "recognised": "[BODY].contact.name == {contact}",
    }
)


def check_click2dial(
    response: HttpResponse, target: ProbeTarget, ctx: ProbeContext, latency: float
) -> tuple[bool, bool | None, str]:
    """A :data:`~probes.base.Check`: 2xx JSON with a call id and a known call state; the call is
    recognised when the answer names the expected CRM contact for the dialled number."""
    answer, failed = json_answer(response)
    if failed is not None:
        return False, None, failed
    status = response.status
    if not isinstance(answer, dict):
        return False, None, f"[STATUS] ({status}) == 2xx, [BODY] is a JSON object"
    call_id = answer.get("call_id")
    state = answer.get("state")
    if not isinstance(call_id, str) or not call_id:
        return False, None, f"[STATUS] ({status}) == 2xx, [CALL_ID] ({call_id!r}) is set"
    if state not in CALL_STATES:
        return (
            False,
            None,
            f"[STATUS] ({status}) == 2xx, [STATE] ({state}) in dialing|ringing|connected",
        )
    contact = answer.get("contact")
    name = contact.get("name") if isinstance(contact, dict) else None
    recognised = name == target.expected_contact
    return (
        True,
        recognised,
        f"[STATUS] ({status}) == 2xx, [STATE] ({state}), "
        f"[CONTACT] ({name or 'none'}) == {target.expected_contact}",
    )
