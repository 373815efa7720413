"""From configuration to probe targets and the probe context."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from classifier.observation import Service, TargetKey
from probes.base import ProbeContext, ProbeTarget, random_ids
from sla.clock import Clock

if TYPE_CHECKING:  # probes read the config's values only; no runtime dependency on ctiwatch
    from ctiwatch.config import Config, ProbesConfig


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
    return ProbeContext(
        clock=clock,
        timeout=probes.timeout.total_seconds(),
        retries=probes.retries,
        retry_backoff=probes.retry_backoff.total_seconds(),
        new_id=new_id,
    )
