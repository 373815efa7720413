"""Remember signed Twilio webhooks already acted on, so a replayed one is refused.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_replays",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_webhook_replays_received_at", "webhook_replays", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_replays_received_at", table_name="webhook_replays")
    op.drop_table("webhook_replays")
