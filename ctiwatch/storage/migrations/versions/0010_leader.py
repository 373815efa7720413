"""Several workers, one truth: the leader lease (who is the active monitor, fenced by a
generation), the generation that wrote each incident last, and the source (agent) of each
stored result, so the active monitor can read back what the other workers stored.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-17
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leader",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("acquired_at", TIME, nullable=False),
        sa.Column("address", sa.String(), nullable=False, server_default=""),
    )
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(
            sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("probe_results") as batch:
        batch.add_column(sa.Column("source_id", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("probe_results") as batch:
        batch.drop_column("source_id")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("generation")
    op.drop_table("leader")
