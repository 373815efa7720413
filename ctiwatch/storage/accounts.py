"""Users, sessions, API tokens and the audit log (``store.accounts``, ``tx.audit``).

Secrets never reach the database: passwords as the argon2id hash the caller gives, session
and token secrets as their SHA-256 (they are long random strings, so a fast hash is enough).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ctiwatch.storage.engine import Database
from ctiwatch.storage.tables import API_TOKENS, AUDIT, SESSIONS, USERS

Role = Literal["viewer", "oncall", "maintainer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "oncall", "maintainer", "admin")


class AlreadyExists(ValueError):
    """A user or token name that is taken."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    role: Role
    password_hash: str
    phone: str | None
    created_at: datetime
    password_changed_at: datetime
    disabled_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id_hash: str
    user: UserRecord
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    address: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    name: str
    role: Role
    prefix: str
    kiosk: bool
    created_by: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: ``actor`` did ``action`` (``incident.ack``) to ``target``
    (``incident 2``) at ``at`` from ``address``, with a short ``detail``."""

    at: datetime
    actor: str
    action: str
    target: str
    detail: str = ""
    address: str = ""
    id: int | None = None


def _role(value: str) -> Role:
    for role in ROLES:
        if role == value:
            return role
    raise ValueError(f"unknown role {value!r}")


def _user(row: Row[Any]) -> UserRecord:
    return UserRecord(
        id=int(row.id),
        username=row.username,
        role=_role(row.role),
        password_hash=row.password_hash,
        phone=row.phone,
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
        disabled_at=row.disabled_at,
    )


def _token(row: Row[Any]) -> TokenRecord:
    return TokenRecord(
        id=int(row.id),
        name=row.name,
        role=_role(row.role),
        prefix=row.prefix,
        kiosk=bool(row.kiosk),
        created_by=row.created_by,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _audit(row: Row[Any]) -> AuditEntry:
    return AuditEntry(
        id=int(row.id),
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        detail=row.detail,
        address=row.address,
    )


def _audit_values(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "actor": entry.actor[:200],
        "action": entry.action[:80],
        "target": entry.target[:200],
        "detail": entry.detail[:500],
        "address": entry.address[:100],
    }


async def add_audit(conn: AsyncConnection, entry: AuditEntry) -> None:
    await conn.execute(AUDIT.insert().values(_audit_values(entry)))


class TxAudit:
    """``tx.audit``: audit lines committed with the change they describe."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, entry: AuditEntry) -> None:
        await add_audit(self._conn, entry)


class AccountRepository:
    """``store.accounts``: users, sessions, tokens and the audit log.

    Every change takes an optional ``audit`` entry, written in the same transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- users -------------------------------------------------------------------------------

    async def add_user(
        self,
        username: str,
        role: Role,
        password_hash: str,
        now: datetime,
        *,
        phone: str | None = None,
        audit: AuditEntry | None = None,
    ) -> UserRecord:
        values = {
            "username": username,
            "role": role,
            "password_hash": password_hash,
            "phone": phone,
            "created_at": now,
            "password_changed_at": now,
        }
        try:
            async with self._db.write() as conn:
                row = (await conn.execute(USERS.insert().values(values).returning(USERS))).one()
                if audit is not None:
                    await add_audit(conn, audit)
        except IntegrityError:
            raise AlreadyExists(f"user {username!r} exists already") from None
        return _user(row)

    async def user(self, username: str) -> UserRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(USERS).where(USERS.c.username == username))).first()
        return None if row is None else _user(row)

    async def users(self) -> builtins.list[UserRecord]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(USERS).order_by(USERS.c.username))
            return [_user(row) for row in rows]

    async def count_users(self) -> int:
        async with self._db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(USERS))).scalar_one())

    async def users_with_phone(self, phone: str) -> builtins.list[UserRecord]:
        async with self._db.read() as conn:
            rows = await conn.execute(
                select(USERS).where(USERS.c.phone == phone).order_by(USERS.c.id)
            )
            return [_user(row) for row in rows]

    async def update_user(
        self, username: str, *, audit: AuditEntry | None = None, **values: Any
    ) -> UserRecord | None:
        """Change ``values`` (``password_hash``, ``password_changed_at``, ``role``, ``phone``,
        ``disabled_at``) of a user; a new password or a disabled account also ends the user's
        sessions. None when there is no such user."""
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    update(USERS)
                    .where(USERS.c.username == username)
                    .values(**values)
                    .returning(USERS)
                )
            ).first()
            if row is None:
                return None
            if "password_hash" in values or values.get("disabled_at") is not None:
                await conn.execute(delete(SESSIONS).where(SESSIONS.c.user_id == row.id))
            if audit is not None:
                await add_audit(conn, audit)
        return _user(row)

    # --- sessions ----------------------------------------------------------------------------

    async def add_session(
        self,
        id_hash: str,
        user: UserRecord,
        csrf_token: str,
        now: datetime,
        expires_at: datetime,
        address: str,
        *,
        audit: AuditEntry | None = None,
    ) -> SessionRecord:
        values = {
            "id_hash": id_hash,
            "user_id": user.id,
            "csrf_token": csrf_token,
            "created_at": now,
            "expires_at": expires_at,
            "address": address[:100],
        }
        async with self._db.write() as conn:
            await conn.execute(SESSIONS.insert().values(values))
            # A login is also the moment to forget this user's expired sessions.
            await conn.execute(
                delete(SESSIONS).where(SESSIONS.c.user_id == user.id, SESSIONS.c.expires_at <= now)
            )
            if audit is not None:
                await add_audit(conn, audit)
        return SessionRecord(id_hash, user, csrf_token, now, expires_at, address)

    async def session(self, id_hash: str) -> SessionRecord | None:
        query = (
            select(SESSIONS, USERS)
            .join(USERS, USERS.c.id == SESSIONS.c.user_id)
            .where(SESSIONS.c.id_hash == id_hash)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        mapping = row._mapping
        user = UserRecord(
            id=int(mapping[USERS.c.id]),
            username=mapping[USERS.c.username],
            role=_role(mapping[USERS.c.role]),
            password_hash=mapping[USERS.c.password_hash],
            phone=mapping[USERS.c.phone],
            created_at=mapping[USERS.c.created_at],
            password_changed_at=mapping[USERS.c.password_changed_at],
            disabled_at=mapping[USERS.c.disabled_at],
        )
        return SessionRecord(
            id_hash=mapping[SESSIONS.c.id_hash],
            user=user,
            csrf_token=mapping[SESSIONS.c.csrf_token],
            created_at=mapping[SESSIONS.c.created_at],
            expires_at=mapping[SESSIONS.c.expires_at],
            address=mapping[SESSIONS.c.address],
        )

    async def delete_session(self, id_hash: str, *, audit: AuditEntry | None = None) -> None:
        async with self._db.write() as conn:
            await conn.execute(delete(SESSIONS).where(SESSIONS.c.id_hash == id_hash))
            if audit is not None:
                await add_audit(conn, audit)

    # --- tokens ------------------------------------------------------------------------------

    async def add_token(
        self,
        name: str,
        role: Role,
        token_hash: str,
        prefix: str,
        *,
        kiosk: bool,
        created_by: str,
        now: datetime,
        audit: AuditEntry | None = None,
    ) -> TokenRecord:
        values = {
            "name": name,
            "role": role,
            "token_hash": token_hash,
            "prefix": prefix,
            "kiosk": kiosk,
            "created_by": created_by,
            "created_at": now,
        }
        try:
            async with self._db.write() as conn:
                row = (
                    await conn.execute(API_TOKENS.insert().values(values).returning(API_TOKENS))
                ).one()
                if audit is not None:
                    await add_audit(conn, audit)
        except IntegrityError:
            raise AlreadyExists(f"a token named {name!r} exists already") from None
        return _token(row)

    async def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(API_TOKENS).where(API_TOKENS.c.token_hash == token_hash))
            ).first()
        return None if row is None else _token(row)

    async def tokens(self) -> builtins.list[TokenRecord]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(API_TOKENS).order_by(API_TOKENS.c.name))
            return [_token(row) for row in rows]

    async def token_used(self, token_id: int, at: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(API_TOKENS).where(API_TOKENS.c.id == token_id).values(last_used_at=at)
            )

    async def revoke_token(
        self, name: str, at: datetime, *, audit: AuditEntry | None = None
    ) -> TokenRecord | None:
        """Revoke the token called ``name`` (kept, as history); None when there is none.
        Revoking twice keeps the first time."""
        async with self._db.write() as conn:
            await conn.execute(
                update(API_TOKENS)
                .where(API_TOKENS.c.name == name, API_TOKENS.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            row = (await conn.execute(select(API_TOKENS).where(API_TOKENS.c.name == name))).first()
            if row is not None and audit is not None:
                await add_audit(conn, audit)
        return None if row is None else _token(row)

    # --- audit -------------------------------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> None:
        async with self._db.write() as conn:
            await add_audit(conn, entry)

    async def audit_log(
        self, limit: int = 200, actor: str | None = None
    ) -> builtins.list[AuditEntry]:
        """The newest lines first."""
        query = select(AUDIT).order_by(AUDIT.c.at.desc(), AUDIT.c.id.desc()).limit(limit)
        if actor:
            query = query.where(AUDIT.c.actor == actor)
        async with self._db.read() as conn:
            return [_audit(row) for row in await conn.execute(query)]
