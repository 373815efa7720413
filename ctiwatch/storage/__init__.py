"""Storage: SQLModel tables, Alembic migrations and async repositories.

SQLite (aiosqlite, WAL) by default, PostgreSQL (asyncpg) by URL. Callers use :class:`Store`
and the frozen dataclasses of :mod:`ctiwatch.storage.records`; table classes stay inside.
"""

from ctiwatch.storage.accounts import AuditEntry
from ctiwatch.storage.dead_letters import is_transient
from ctiwatch.storage.engine import StorageError, normalize_url
from ctiwatch.storage.records import (
    AgentRecord,
    CallCounts,
    DeadLetter,
    IncidentRecord,
    MaintenanceRecord,
    MaintenanceRevision,
    OutboxMessage,
    Rollup,
    ScopeItem,
    TimelineEntry,
)
from ctiwatch.storage.store import Store, Transaction

__all__ = [
    "AgentRecord",
    "AuditEntry",
    "CallCounts",
    "DeadLetter",
    "IncidentRecord",
    "MaintenanceRecord",
    "MaintenanceRevision",
    "OutboxMessage",
    "Rollup",
    "ScopeItem",
    "StorageError",
    "Store",
    "TimelineEntry",
    "Transaction",
    "is_transient",
    "normalize_url",
]
