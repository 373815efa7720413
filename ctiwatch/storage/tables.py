"""SQLModel table classes. Private to ``ctiwatch.storage``: callers get ``records`` values.

The schema itself is created by the Alembic migrations (``migrations/versions``); these
classes must match them, which ``test_storage_migrations`` checks with Alembic's
``compare_metadata``. Queries use SQLAlchemy Core on ``table_of(Model)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from ctiwatch.storage.types import UTCDateTime, json_type

metadata: MetaData = SQLModel.metadata

# 64-bit ids where rows arrive every minute per target; SQLite's rowid alias must be INTEGER.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


def table_of(model: type[SQLModel]) -> Table:
    """The Core ``Table`` of a table model (SQLModel does not type ``__table__``)."""
    table = getattr(model, "__table__")  # noqa: B009
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


class ProbeResultRow(SQLModel, table=True):
    __tablename__ = "probe_results"
    __table_args__ = (
        UniqueConstraint("result_id", name="uq_probe_results_result_id"),
        Index("ix_probe_results_customer_location_at", "customer", "location", "at"),
        Index("ix_probe_results_customer_location_user_at", "customer", "location", "user", "at"),
        Index("ix_probe_results_at", "at"),  # retention
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    result_id: str
    service: str
    customer: str
    location: str
    user: str
    at: datetime = Field(sa_type=UTCDateTime)
    ok: bool
    recognised: bool | None = None
    latency_ms: float
    status: int | None = None
    evidence: str = Field(sa_type=Text)
    source: str
    attempts: int
    source_id: str | None = None  # 0010: the agent's name for an agent's result


class TargetLatestRow(SQLModel, table=True):
    """The newest result per target, upserted on every insert: "latest" reads O(targets)."""

    __tablename__ = "target_latest"

    service: str = Field(primary_key=True)
    customer: str = Field(primary_key=True)
    location: str = Field(primary_key=True)
    user: str = Field(primary_key=True)
    result_id: str
    at: datetime = Field(sa_type=UTCDateTime)
    ok: bool
    recognised: bool | None = None
    latency_ms: float
    status: int | None = None
    evidence: str = Field(sa_type=Text)
    source: str
    attempts: int


class _RollupFields(SQLModel):
    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    bucket: datetime = Field(sa_type=UTCDateTime)
    service: str
    customer: str
    location: str
    user: str
    count: int
    failures: int
    calls: int
    misses: int
    latency_sum: float
    latency_max: float
    # Non-cumulative latency histogram; bounds in records.LATENCY_BOUNDS_MS.
    h00: int = 0
    h01: int = 0
    h02: int = 0
    h03: int = 0
    h04: int = 0
    h05: int = 0
    h06: int = 0
    h07: int = 0
    h08: int = 0
    h09: int = 0
    h10: int = 0
    h11: int = 0
    h12: int = 0
    h13: int = 0
    h14: int = 0
    h15: int = 0


HISTOGRAM_COLUMNS: tuple[str, ...] = tuple(f"h{i:02d}" for i in range(16))
ROLLUP_KEY: tuple[str, ...] = ("customer", "location", "user", "bucket", "service")


def _rollup_args(name: str) -> tuple[Any, ...]:
    return (
        UniqueConstraint(*ROLLUP_KEY, name=f"uq_{name}_target_bucket"),
        Index(f"ix_{name}_customer_location_bucket", "customer", "location", "bucket"),
        Index(f"ix_{name}_bucket", "bucket"),
    )


class RollupMinuteRow(_RollupFields, table=True):
    __tablename__ = "rollups_minute"
    __table_args__ = _rollup_args("rollups_minute")


class RollupHourRow(_RollupFields, table=True):
    __tablename__ = "rollups_hour"
    __table_args__ = _rollup_args("rollups_hour")


class CounterRow(SQLModel, table=True):
    """Named counters (``incident``: the last incident number handed out)."""

    __tablename__ = "counters"

    name: str = Field(primary_key=True)
    value: int


class IncidentRow(SQLModel, table=True):
    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'resolved')", name="ck_incidents_status"),
        CheckConstraint("priority BETWEEN 1 AND 4", name="ck_incidents_priority"),
        Index("ix_incidents_customer_status", "customer", "status"),
        Index("ix_incidents_opened_at", "opened_at"),
    )

    number: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    customer: str
    automatic: bool
    priority: int
    status: str
    title: str = Field(sa_type=Text)
    opened_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = None
    response_due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    update_due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    repair_due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    breaches: list[str] = Field(default_factory=list, sa_type=json_type())
    scope: list[dict[str, Any]] = Field(default_factory=list, sa_type=json_type())
    state: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())
    updated_at: datetime = Field(sa_type=UTCDateTime)
    # The leader generation that wrote the row last (0010): a save never overwrites a newer one.
    generation: int = Field(default=0, sa_type=BigInteger)


# Deferred: a unit of work may add timeline/outbox rows before it saves the incident.
_DEFERRED: dict[str, Any] = {"deferrable": True, "initially": "DEFERRED"}


class TimelineRow(SQLModel, table=True):
    __tablename__ = "incident_timeline"
    __table_args__ = (Index("ix_incident_timeline_number_at", "incident_number", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_number: int = Field(
        sa_column_args=[
            ForeignKey(
                "incidents.number",
                name="fk_incident_timeline_incident",
                ondelete="CASCADE",
                **_DEFERRED,
            )
        ]
    )
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str
    detail: str = Field(sa_type=Text)
    actor: str


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
        CheckConstraint("channel IN ('email', 'sms', 'voice')", name="ck_outbox_channel"),
        CheckConstraint(
            "status IN ('pending', 'claimed', 'sent', 'failed')", name="ck_outbox_status"
        ),
        Index("ix_outbox_status_not_before", "status", "not_before"),
        Index("ix_outbox_incident_number", "incident_number"),
        Index("ix_outbox_provider_id", "provider_id"),  # Twilio status callbacks (0002)
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    incident_number: int | None = Field(
        default=None,
        sa_column_args=[
            ForeignKey(
                "incidents.number", name="fk_outbox_incident", ondelete="SET NULL", **_DEFERRED
            )
        ],
    )
    channel: str
    recipient: str
    kind: str
    subject: str = Field(sa_type=Text)
    body: str = Field(sa_type=Text)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())
    created_at: datetime = Field(sa_type=UTCDateTime)
    not_before: datetime = Field(sa_type=UTCDateTime)
    status: str
    claimed_by: str | None = None
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    provider_id: str | None = None
    last_error: str | None = Field(default=None, sa_type=Text)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    failed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MaintenanceRow(SQLModel, table=True):
    __tablename__ = "maintenance_windows"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="ck_maintenance_windows_order"),
        Index("ix_maintenance_windows_ends_at", "ends_at"),
        Index("ix_maintenance_windows_series_ends_at", "series_ends_at"),  # 0006
    )

    id: int | None = Field(default=None, primary_key=True)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    services: list[str] = Field(default_factory=list, sa_type=json_type())
    customers: list[str] = Field(default_factory=list, sa_type=json_type())
    locations: list[str] = Field(default_factory=list, sa_type=json_type())
    reason: str = Field(sa_type=Text)
    created_by: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    cancelled_by: str | None = Field(default=None, nullable=True)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    # 0006: an RFC 5545 rule and the occurrences it was judged by ([[start, end], ...] in ISO
    # 8601 UTC; None: the one window), the end of its last occurrence, the emergency exception
    # and the number of the window's latest revision (maintenance_revisions).
    recurrence: str | None = Field(default=None, sa_type=Text, nullable=True)
    occurrences: list[list[str]] | None = Field(default=None, sa_type=json_type(), nullable=True)
    series_ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    emergency: bool = False
    justification: str = Field(default="", sa_type=Text)
    revision: int = 1


class MaintenanceRevisionRow(SQLModel, table=True):
    """One step in a window's history: scheduled, changed or cancelled, by whom, when, why,
    and (``before``) the window as it was before the step."""

    __tablename__ = "maintenance_revisions"
    __table_args__ = (
        UniqueConstraint("window_id", "revision", name="uq_maintenance_revisions_revision"),
        CheckConstraint(
            "action IN ('scheduled', 'changed', 'cancelled')",
            name="ck_maintenance_revisions_action",
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    window_id: int = Field(
        sa_column_args=[
            ForeignKey(
                "maintenance_windows.id", name="fk_maintenance_revisions_window", ondelete="CASCADE"
            )
        ],
    )
    revision: int
    action: str
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str
    reason: str = Field(sa_type=Text)
    before: dict[str, Any] | None = Field(default=None, sa_type=json_type(), nullable=True)


class AgentRow(SQLModel, table=True):
    __tablename__ = "agents"
    __table_args__ = (CheckConstraint("status IN ('online', 'offline')", name="ck_agents_status"),)

    name: str = Field(primary_key=True)
    last_seen: datetime = Field(sa_type=UTCDateTime)
    status: str
    meta: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())


class DeadLetterRow(SQLModel, table=True):
    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_parked_at", "parked_at"),)

    id: int | None = Field(default=None, primary_key=True)
    parked_at: datetime = Field(sa_type=UTCDateTime)
    source: str
    key: str
    reason: str = Field(sa_type=Text)
    payload: str = Field(sa_type=Text)


PROBE_RESULTS = table_of(ProbeResultRow)
TARGET_LATEST = table_of(TargetLatestRow)
ROLLUPS_MINUTE = table_of(RollupMinuteRow)
ROLLUPS_HOUR = table_of(RollupHourRow)
COUNTERS = table_of(CounterRow)
INCIDENTS = table_of(IncidentRow)
TIMELINE = table_of(TimelineRow)
OUTBOX = table_of(OutboxRow)
MAINTENANCE = table_of(MaintenanceRow)
MAINTENANCE_REVISIONS = table_of(MaintenanceRevisionRow)
AGENTS = table_of(AgentRow)
DEAD_LETTERS = table_of(DeadLetterRow)


class WebhookReplayRow(SQLModel, table=True):
    """A signed Twilio webhook already acted on, by its key (``sms:SM...``, ``status:SM...:
    delivered``, ...): the same request again is a replay. Kept for a retention period."""

    __tablename__ = "webhook_replays"
    __table_args__ = (Index("ix_webhook_replays_received_at", "received_at"),)

    key: str = Field(primary_key=True)
    received_at: datetime = Field(sa_type=UTCDateTime)


WEBHOOK_REPLAYS = table_of(WebhookReplayRow)


class HeldMessageRow(SQLModel, table=True):
    """An on-call SMS held outside support hours for the next opening's digest (0006)."""

    __tablename__ = "held_messages"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_held_messages_idempotency_key"),
        Index("ix_held_messages_held_at", "held_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    incident_number: int | None = None
    channel: str
    recipient: str
    kind: str
    subject: str = Field(sa_type=Text)
    body: str = Field(sa_type=Text)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())
    held_at: datetime = Field(sa_type=UTCDateTime)


HELD_MESSAGES = table_of(HeldMessageRow)


class LeaderRow(SQLModel, table=True):
    """Who is the active monitor (0010): a lease renewed by its holder. ``generation`` grows by
    one at every change of holder; every step of the monitor checks it in its own transaction,
    so a paused old leader cannot write once another worker took over."""

    __tablename__ = "leader"

    name: str = Field(primary_key=True)
    holder: str
    generation: int = Field(sa_type=BigInteger)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    acquired_at: datetime = Field(sa_type=UTCDateTime)
    address: str = ""


LEADER = table_of(LeaderRow)


class HandoverRow(SQLModel, table=True):
    """A person's action taken in by a worker that is not the active monitor (0011), for the
    active monitor to apply in its fenced step (``status`` pending -> done, with ``result``), or
    withdrawn by the worker that took it in when no monitor applied it in time."""

    __tablename__ = "handovers"
    __table_args__ = (
        Index("ix_handovers_status_id", "status", "id"),
        Index("ix_handovers_created_at", "created_at"),  # retention
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BIG_ID)
    kind: str
    args: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())
    origin: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    deadline: datetime = Field(sa_type=UTCDateTime)
    status: str
    result: dict[str, Any] | None = Field(default=None, sa_type=json_type())
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    done_by: str | None = None


HANDOVERS = table_of(HandoverRow)


class CustomerLinkRow(SQLModel, table=True):
    """A customer's status page token: its SHA-256, what a request is looked up by (0008), and
    the token itself, for the link in the notices to the customer (0011; None for a link made
    before, until it is rotated); one link per customer."""

    __tablename__ = "customer_links"
    __table_args__ = (UniqueConstraint("token_hash", name="uq_customer_links_token_hash"),)

    customer: str = Field(primary_key=True)
    token_hash: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str
    token: str | None = None


CUSTOMER_LINKS = table_of(CustomerLinkRow)


# Accounts, sessions, API tokens and the audit log live in their own module (same metadata).
from ctiwatch.storage.account_tables import (  # noqa: E402
    ApiTokenRow,
    AuditRow,
    SessionRow,
    UserRow,
)

USERS = table_of(UserRow)
SESSIONS = table_of(SessionRow)
API_TOKENS = table_of(ApiTokenRow)
AUDIT = table_of(AuditRow)
