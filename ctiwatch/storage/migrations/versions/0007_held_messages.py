"""Held messages: on-call SMS held outside support hours for the next opening's digest.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "held_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("incident_number", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("held_at", TIME, nullable=False),
        sa.UniqueConstraint("idempotency_key", name="uq_held_messages_idempotency_key"),
    )
    op.create_index("ix_held_messages_held_at", "held_messages", ["held_at"])


def downgrade() -> None:
    op.drop_index("ix_held_messages_held_at", table_name="held_messages")
    op.drop_table("held_messages")
