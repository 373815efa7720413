"""A generic HTTP check: status, an optional body condition, TLS certificate expiry.

``GET {base_url}{path}``; ``recognised`` is always ``None`` (no call is made).
"""

from __future__ import annotations

from collections.abc import Awaitable

from classifier.observation import ProbeResult
from probes.base import (
    HttpRequest,
    HttpResponse,
    Probe,
    ProbeContext,
    ProbeTarget,
    Transport,
    cached_request,
    run_http_probe,
)


def make_http_probe(
    path: str = "",
    expected_status: int = 200,
    body_contains: str | None = None,
    min_cert_days: float | None = None,
) -> Probe:
    """A probe for ``GET base_url + path``; each condition shows its actual value."""
    needle = body_contains.encode() if body_contains is not None else None
    kind = f"http {path}"  # the request depends on the target and the path only

    def build(target: ProbeTarget) -> HttpRequest:
        return HttpRequest("GET", f"{target.base_url}{path}", target.auth_headers)

    def check(
        response: HttpResponse, target: ProbeTarget, ctx: ProbeContext
    ) -> tuple[bool, bool | None, str]:
        ok = response.status == expected_status
        parts = [f"[STATUS] ({response.status}) == {expected_status}"]
        if needle is not None:
            found = needle in response.body
            ok = ok and found
            parts.append(f"[BODY] ({'contains' if found else 'lacks'}) {body_contains!r}")
        if response.tls_not_after is not None:
            days = (response.tls_not_after - ctx.clock.now()).total_seconds() / 86400.0
            if min_cert_days is not None:
                ok = ok and days >= min_cert_days
                parts.append(f"[CERTIFICATE_EXPIRATION] ({days:.1f}d) >= {min_cert_days:g}d")
            else:
                parts.append(f"[CERTIFICATE_EXPIRATION] ({days:.1f}d)")
        elif min_cert_days is not None and target.base_url.startswith("https:"):
            ok = False
            parts.append(f"[CERTIFICATE_EXPIRATION] (unknown) >= {min_cert_days:g}d")
        return ok, None, ", ".join(parts)

    def probe_http(
        target: ProbeTarget, transport: Transport, ctx: ProbeContext
    ) -> Awaitable[ProbeResult]:
        request = cached_request(target, kind, build)
        return run_http_probe(target, transport, ctx, request, check)

    return probe_http


probe_http = make_http_probe()
