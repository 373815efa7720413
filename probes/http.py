"""A generic HTTP check: status, body, TLS certificate expiry, as a template.

Any template is a generic HTTP check (``probes.template``); :func:`make_http_probe` builds the
common one from keyword arguments. ``recognised`` is always ``None`` (no call is made).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable

from classifier.observation import ProbeResult
from probes.base import Probe, ProbeContext, ProbeTarget, Transport, run_http_probe
from probes.template import RequestTemplate, bound, probe_template


def http_template(
    path: str = "",
    expected_status: int = 200,
    body_contains: str | None = None,
    min_cert_days: float | None = None,
    method: str = "GET",
) -> RequestTemplate:
    """``GET base_url + path`` with ``[STATUS] == expected_status``, ``[BODY] contains ...``
    and ``[CERTIFICATE_EXPIRATION] >= Nd`` (which fails when no certificate was seen)."""
    conditions = [f"[STATUS] == {expected_status}"]
    if body_contains is not None:
        conditions.append(f"[BODY] contains {json.dumps(body_contains, ensure_ascii=False)}")
    if min_cert_days is not None:
        conditions.append(f"[CERTIFICATE_EXPIRATION] >= {min_cert_days:g}d")
    return RequestTemplate.parse(method=method, url=path, conditions=conditions)


def make_http_probe(
    path: str = "",
    expected_status: int = 200,
    body_contains: str | None = None,
    min_cert_days: float | None = None,
) -> Probe:
    """A probe for ``GET base_url + path`` (whatever the target's own template)."""
    template = http_template(path, expected_status, body_contains, min_cert_days)

    def probe_http(
        target: ProbeTarget, transport: Transport, ctx: ProbeContext
    ) -> Awaitable[ProbeResult]:
        plan = bound(target, template)
        return run_http_probe(target, transport, ctx, plan.request, plan.check)

    return probe_http


probe_http = probe_template
"""The registry's ``http`` kind: a target whose template is a generic HTTP check."""
