"""Table classes of accounts: users, sessions, API tokens and the audit log (migration 0008).

Private to ``ctiwatch.storage`` like :mod:`ctiwatch.storage.tables` (which imports this module so
the one ``metadata`` holds them); callers get the records of :mod:`ctiwatch.storage.accounts`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from ctiwatch.storage.types import UTCDateTime

ROLE_CHECK = "role IN ('viewer', 'oncall', 'maintainer', 'admin')"


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("username", name="uq_users_username"),
        CheckConstraint(ROLE_CHECK, name="ck_users_role"),
        Index("ix_users_phone", "phone"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str
    role: str
    password_hash: str = Field(sa_type=Text)
    phone: str | None = Field(default=None, nullable=True)
    created_at: datetime = Field(sa_type=UTCDateTime)
    password_changed_at: datetime = Field(sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class SessionRow(SQLModel, table=True):
    """A login: only the SHA-256 of the cookie's secret is stored."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_expires_at", "expires_at"),)

    id_hash: str = Field(primary_key=True)
    user_id: int = Field(
        sa_column_args=[ForeignKey("users.id", name="fk_sessions_user", ondelete="CASCADE")]
    )
    csrf_token: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    address: str


class ApiTokenRow(SQLModel, table=True):
    """An API token: only the SHA-256 of the secret is stored, with a short prefix to tell
    tokens apart in lists."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        UniqueConstraint("name", name="uq_api_tokens_name"),
        CheckConstraint(ROLE_CHECK, name="ck_api_tokens_role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str
    role: str
    token_hash: str
    prefix: str
    kiosk: bool = False
    created_by: str
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class AuditRow(SQLModel, table=True):
    """Who did what, when, from where, to what."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str
    action: str
    target: str
    detail: str = Field(sa_type=Text)
    address: str
