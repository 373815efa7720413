"""Initial schema: results and rollups, incidents and timeline, outbox, maintenance, agents.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Migrations spell their types out instead of importing the models, so that later model
# changes never rewrite history. UTC handling lives in ctiwatch.storage.types.UTCDateTime.
TIME = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _rollup_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("bucket", TIME, nullable=False),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.Column("latency_max", sa.Float(), nullable=False),
        *[sa.Column(f"h{i:02d}", sa.Integer(), nullable=False) for i in range(16)],
        sa.UniqueConstraint(
            "customer", "location", "user", "bucket", "service", name=f"uq_{name}_target_bucket"
        ),
    )
    op.create_index(f"ix_{name}_customer_location_bucket", name, ["customer", "location", "bucket"])
    op.create_index(f"ix_{name}_bucket", name, ["bucket"])


def upgrade() -> None:
    op.create_table(
        "probe_results",
        sa.Column("id", BIG_ID, primary_key=True),
        sa.Column("result_id", sa.String(), nullable=False),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("user", sa.String(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("recognised", sa.Boolean(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.UniqueConstraint("result_id", name="uq_probe_results_result_id"),
    )
    op.create_index(
        "ix_probe_results_customer_location_at", "probe_results", ["customer", "location", "at"]
    )
    op.create_index(
        "ix_probe_results_customer_location_user_at",
        "probe_results",
        ["customer", "location", "user", "at"],
    )
    op.create_index("ix_probe_results_at", "probe_results", ["at"])

    op.create_table(
        "target_latest",
        sa.Column("service", sa.String(), primary_key=True),
        sa.Column("customer", sa.String(), primary_key=True),
        sa.Column("location", sa.String(), primary_key=True),
        sa.Column("user", sa.String(), primary_key=True),
        sa.Column("result_id", sa.String(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("recognised", sa.Boolean(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )

    _rollup_table("rollups_minute")
    _rollup_table("rollups_hour")

    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    op.bulk_insert(counters, [{"name": "incident", "value": 0}])

    op.create_table(
        "incidents",
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("opened_at", TIME, nullable=False),
        sa.Column("acknowledged_at", TIME, nullable=True),
        sa.Column("resolved_at", TIME, nullable=True),
        sa.Column("resolved_by", sa.String(), nullable=True),
        sa.Column("response_due", TIME, nullable=True),
        sa.Column("update_due", TIME, nullable=True),
        sa.Column("repair_due", TIME, nullable=True),
        sa.Column("breaches", _json(), nullable=False),
        sa.Column("scope", _json(), nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.CheckConstraint("status IN ('open', 'resolved')", name="ck_incidents_status"),
        sa.CheckConstraint("priority BETWEEN 1 AND 4", name="ck_incidents_priority"),
    )
    op.create_index("ix_incidents_customer_status", "incidents", ["customer", "status"])
    op.create_index("ix_incidents_opened_at", "incidents", ["opened_at"])

    op.create_table(
        "incident_timeline",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_number", sa.Integer(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name="fk_incident_timeline_incident",
            ondelete="CASCADE",
            deferrable=True,
            initially="DEFERRED",
        ),
    )
    op.create_index(
        "ix_incident_timeline_number_at", "incident_timeline", ["incident_number", "at"]
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("not_before", TIME, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("lease_until", TIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", TIME, nullable=True),
        sa.Column("failed_at", TIME, nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
        sa.CheckConstraint("channel IN ('email', 'sms', 'voice')", name="ck_outbox_channel"),
        sa.CheckConstraint(
            "status IN ('pending', 'claimed', 'sent', 'failed')", name="ck_outbox_status"
        ),
        sa.ForeignKeyConstraint(
            ["incident_number"],
            ["incidents.number"],
            name="fk_outbox_incident",
            ondelete="SET NULL",
            deferrable=True,
            initially="DEFERRED",
        ),
    )
    op.create_index("ix_outbox_status_not_before", "outbox", ["status", "not_before"])
    op.create_index("ix_outbox_incident_number", "outbox", ["incident_number"])

    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("starts_at", TIME, nullable=False),
        sa.Column("ends_at", TIME, nullable=False),
        sa.Column("services", _json(), nullable=False),
        sa.Column("customers", _json(), nullable=False),
        sa.Column("locations", _json(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name="ck_maintenance_windows_order"),
    )
    op.create_index("ix_maintenance_windows_ends_at", "maintenance_windows", ["ends_at"])

    op.create_table(
        "agents",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("last_seen", TIME, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("meta", _json(), nullable=False),
        sa.CheckConstraint("status IN ('online', 'offline')", name="ck_agents_status"),
    )


def downgrade() -> None:
    for table in (
        "agents",
        "maintenance_windows",
        "outbox",
        "incident_timeline",
        "incidents",
        "counters",
        "rollups_hour",
        "rollups_minute",
        "target_latest",
        "probe_results",
    ):
        op.drop_table(table)
