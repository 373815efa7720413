"""Customer links keep their token beside its hash, so the notices to a customer's contact can
carry the link of the customer's own status page (links made before this have none until
rotated: ``ctiwatch customers link <id> --rotate``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer_links") as batch:
        batch.add_column(sa.Column("token", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer_links") as batch:
        batch.drop_column("token")
