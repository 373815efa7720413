"""The middle of ctiwatch composed: classifier → incidents → SLA timers → escalation → routing.

Pure and synchronous like the packages it composes; it takes plain settings
(:class:`pipeline.settings.MonitorSettings`), never the configuration, which the shell
converts in ``ctiwatch/settings.py``.
"""

from pipeline.monitor import Monitor, Outcome
from pipeline.settings import CustomerTopology, MonitorSettings

__all__ = ["CustomerTopology", "Monitor", "MonitorSettings", "Outcome"]
