"""The incident engine: conditions and people's actions in, incidents and events out (pure)."""

from incidents.engine import IncidentEngine
from incidents.model import (
    ConditionsStillHold,
    Incident,
    IncidentError,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    MaintenanceWindow,
    ResolvedBy,
    ScopeEntry,
    TimelineEntry,
)

__all__ = [
    "ConditionsStillHold",
    "Incident",
    "IncidentEngine",
    "IncidentError",
    "IncidentEvent",
    "IncidentEventKind",
    "IncidentStatus",
    "MaintenanceWindow",
    "ResolvedBy",
    "ScopeEntry",
    "TimelineEntry",
]
