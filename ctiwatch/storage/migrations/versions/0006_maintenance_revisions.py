"""Maintenance as the SLA asks: recurrence (the occurrences judged), emergencies with their
justification, and every change or cancellation kept as a revision (who, when, why, before).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-16
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("maintenance_windows") as batch:
        batch.add_column(sa.Column("recurrence", sa.Text(), nullable=True))
        batch.add_column(sa.Column("occurrences", _json(), nullable=True))
        batch.add_column(sa.Column("series_ends_at", TIME, nullable=True))
        batch.add_column(
            sa.Column("emergency", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("justification", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))
    op.create_index(
        "ix_maintenance_windows_series_ends_at", "maintenance_windows", ["series_ends_at"]
    )
    op.create_table(
        "maintenance_revisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "window_id",
            sa.Integer(),
            sa.ForeignKey(
                "maintenance_windows.id", name="fk_maintenance_revisions_window", ondelete="CASCADE"
            ),
            nullable=False,
        ),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("before", _json(), nullable=True),
        sa.UniqueConstraint("window_id", "revision", name="uq_maintenance_revisions_revision"),
        sa.CheckConstraint(
            "action IN ('scheduled', 'changed', 'cancelled')",
            name="ck_maintenance_revisions_action",
        ),
    )


def downgrade() -> None:
    op.drop_table("maintenance_revisions")
    op.drop_index("ix_maintenance_windows_series_ends_at", table_name="maintenance_windows")
    with op.batch_alter_table("maintenance_windows") as batch:
        for column in (
            "revision",
            "justification",
            "emergency",
            "series_ends_at",
            "occurrences",
            "recurrence",
        ):
            batch.drop_column(column)
