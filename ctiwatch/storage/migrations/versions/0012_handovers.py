"""Any worker takes people's actions: the handovers a worker that is not the active monitor
writes for the active monitor to apply in its fenced step, with the result it waits for.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-18
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("args", JSON, nullable=False),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("deadline", TIME, nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("done_at", TIME, nullable=True),
        sa.Column("done_by", sa.String(), nullable=True),
    )
    op.create_index("ix_handovers_status_id", "handovers", ["status", "id"])
    op.create_index("ix_handovers_created_at", "handovers", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_handovers_created_at", table_name="handovers")
    op.drop_index("ix_handovers_status_id", table_name="handovers")
    op.drop_table("handovers")
