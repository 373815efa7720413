"""Index outbox.provider_id: a Twilio status callback finds its message by the provider's id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_provider_id", "outbox", ["provider_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_provider_id", table_name="outbox")
