"""Keep cancelled maintenance windows: who cancelled them and when.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("maintenance_windows") as batch:
        batch.add_column(sa.Column("cancelled_by", sa.String(), nullable=True))
        batch.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("maintenance_windows") as batch:
        batch.drop_column("cancelled_at")
        batch.drop_column("cancelled_by")
