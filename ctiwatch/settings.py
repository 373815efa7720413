"""Configuration → core values: the one shell module where ``ctiwatch.config`` meets the core.

The core packages never import ``ctiwatch`` (the import-linter contracts in ``pyproject.toml``);
what they need of the configuration is built here, as their own plain values.
"""

from __future__ import annotations

from collections.abc import Callable

from classifier.observation import Service, TargetKey
from ctiwatch.config import Config, ProbesConfig
from probes.base import ProbeContext, ProbeTarget, random_ids
from sla.clock import Clock


def targets_from_config(config: Config) -> list[ProbeTarget]:
    """Every customer x location x user x service, in configuration order."""
    probes = config.probes
    targets: list[ProbeTarget] = []
    for customer in config.topology.customers:
        for location in customer.locations:
            base_url = location.base_url or probes.base_url
            for user in location.users:
                for service in Service:
                    targets.append(
                        ProbeTarget(
                            key=TargetKey(service, customer.id, location.id, user.id),
                            base_url=base_url,
                            api_token=probes.api_token,
                            caller_number=user.caller_number,
                            expected_contact=user.expected_contact,
                            extension=user.extension,
                        )
                    )
    return targets


def context_from_config(
    probes: ProbesConfig, clock: Clock, new_id: Callable[[], str] = random_ids
) -> ProbeContext:
    """The probes' context: the clock, and the timeout and retries of ``probes:``."""
    return ProbeContext(
        clock=clock,
        timeout=probes.timeout.total_seconds(),
        retries=probes.retries,
        retry_backoff=probes.retry_backoff.total_seconds(),
        new_id=new_id,
    )
