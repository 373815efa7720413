"""The map from probe kind to probe: adding a kind is one new module and one line here.

Every kind is a request template (``probes.template``): a target carries its own (from
``probes.templates`` in the configuration) or gets its service's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from probes.base import Probe
from probes.http import probe_http
from probes.template import probe_template

# Click2Dial and CRM are request templates: the target's own, or its service's default
# (``probes.template.DEFAULT_TEMPLATES``, judged by ``check_click2dial`` and ``check_crm``).
probe_click2dial: Probe = probe_template
probe_crm: Probe = probe_template

# Read-only: no module-level mutable state; pass your own mapping to the scheduler to extend.
PROBES: Mapping[str, Probe] = MappingProxyType(
    {"click2dial": probe_click2dial, "crm": probe_crm, "http": probe_http}
)

# Probes whose rounds the context bounds by itself: every attempt under the context's timeout,
# bounded retries and backoff (``run_http_probe``), so a round never outlasts
# ``ProbeContext.worst_case``. The scheduler needs no deadline timer of its own for them when
# its deadline is at least that long (the default is a second more).
SELF_BOUNDED: frozenset[Probe] = frozenset(PROBES.values())
