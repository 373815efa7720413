"""CRM integration: look the caller's number up as the test user; the contact must come back.

``GET {base_url}/api/v1/recognition/{customer}/{location}/{user}?number={caller_number}``.
A correct answer is 2xx with a ``contacts`` list; the call is recognised when the expected
contact is in it. An answer without it is a miss (the service works, the match failed).
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


def crm_request(target: ProbeTarget) -> HttpRequest:
    key = target.key
    url = (
        f"{target.base_url}/api/v1/recognition/{quote(key.customer, safe='')}/"
        f"{quote(key.location, safe='')}/{quote(key.user, safe='')}"
        f"?number={quote(target.caller_number, safe='')}"
    )
    return HttpRequest("GET", url, target.auth_headers)


def check_crm(
    response: HttpResponse, target: ProbeTarget, ctx: ProbeContext
) -> tuple[bool, bool | None, str]:
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


def probe_crm(
    target: ProbeTarget, transport: Transport, ctx: ProbeContext
) -> Awaitable[ProbeResult]:
    """A :data:`~probes.base.Probe` (a plain function returning the coroutine: one frame less)."""
    request = cached_request(target, "crm", crm_request)
    return run_http_probe(target, transport, ctx, request, check_crm)
