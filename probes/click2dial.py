"""Click2Dial: start a call as the test user and check that the platform took it.

``POST {base_url}/api/v1/click2dial/{customer}/{location}/{user}/calls`` with
``{"number": caller_number}``. A correct answer is 2xx with a call id and a known call state;
the call is recognised when the answer names the expected CRM contact for the dialled number.
"""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import quote

from classifier.observation import ProbeResult
from probes.base import (
    HttpRequest,
    HttpResponse,
    ProbeContext,
    ProbeTarget,
    Transport,
    cached_request,
    json_answer,
    run_http_probe,
)

CALL_STATES = frozenset({"dialing", "ringing", "connected"})


def click2dial_request(target: ProbeTarget) -> HttpRequest:
    key = target.key
    url = (
        f"{target.base_url}/api/v1/click2dial/{quote(key.customer, safe='')}/"
        f"{quote(key.location, safe='')}/{quote(key.user, safe='')}/calls"
    )
    payload: dict[str, str] = {"number": target.caller_number}
    if target.extension:
        payload["extension"] = target.extension
    return HttpRequest("POST", url, target.auth_headers, payload)


def check_click2dial(
    response: HttpResponse, target: ProbeTarget, ctx: ProbeContext
) -> tuple[bool, bool | None, str]:
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


def probe_click2dial(
    target: ProbeTarget, transport: Transport, ctx: ProbeContext
) -> Awaitable[ProbeResult]:
    """A :data:`~probes.base.Probe` (a plain function returning the coroutine: one frame less)."""
    request = cached_request(target, "click2dial", click2dial_request)
    return run_http_probe(target, transport, ctx, request, check_click2dial)
