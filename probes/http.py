"""A generic HTTP check: status, body, TLS certificate expiry, as a template.

Any template is a generic HTTP check (``probes.template``). :func:`check_template` makes the
template of a configured check (``probes.checks``, a customer's ``checks``): its request, its
conditions and, with a warning threshold, ``[CERTIFICATE_EXPIRATION] > Nd``, whose evidence
shows the expiry date. :func:`make_http_probe` builds the common one from keyword arguments.
``recognised`` is always ``None`` (no call is made).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from classifier.observation import ProbeResult
from probes.base import Probe, ProbeContext, ProbeTarget, Transport, run_http_probe
from probes.conditions import Condition, parse_condition
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


def check_template(
    *,
    method: str,
    url: str,
    conditions: Sequence[Condition],
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    certificate_warning_days: int | None = None,
) -> RequestTemplate:
    """A configured check's template (its parts were checked when the file was loaded): the
    conditions in order, then the certificate's expiry when a warning threshold is set (a
    certificate that expires within it, or none seen, fails the check)."""
    judged = list(conditions)
    if certificate_warning_days is not None:
        judged.append(parse_condition(f"[CERTIFICATE_EXPIRATION] > {certificate_warning_days}d"))
    return RequestTemplate(
        method=method, url=url, conditions=tuple(judged), headers=dict(headers or {}), body=body
    )


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
