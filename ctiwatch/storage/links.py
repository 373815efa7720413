"""``store.customer_links``: the link of each customer's status page (``/status/<token>``).

A request finds its customer by the token's SHA-256 (an indexed equality; a token is 32 random
bytes, so a plain hash is as good as a slow one here). The token itself is kept too (0011): the
notices to the customer's contact carry the link (:meth:`CustomerLinkRepository.tokens`). It
opens one customer's read-only page, which the database holds anyway; the CLI still shows a link
once, when it is made. Rotating replaces both: the old link then finds nothing (404), and the
notices built from then on carry the new one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select

from ctiwatch.storage.accounts import AuditEntry, add_audit
from ctiwatch.storage.engine import Database
from ctiwatch.storage.tables import CUSTOMER_LINKS

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CustomerLinkRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def customer_of(self, token: str) -> str | None:
        """The customer whose current link ``token`` is, or None."""
        query = select(CUSTOMER_LINKS.c.customer).where(
            CUSTOMER_LINKS.c.token_hash == token_hash(token)
        )
        async with self._db.read() as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return None if found is None else str(found)

    async def has_link(self, customer: str) -> bool:
        query = select(CUSTOMER_LINKS.c.customer).where(CUSTOMER_LINKS.c.customer == customer)
        async with self._db.read() as conn:
            return (await conn.execute(query)).first() is not None

    async def tokens(self) -> dict[str, str]:
        """Each customer's current link token, for the links in its notices (a link made before
        tokens were kept has none here until it is rotated)."""
        query = select(CUSTOMER_LINKS.c.customer, CUSTOMER_LINKS.c.token).where(
            CUSTOMER_LINKS.c.token.is_not(None)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return {str(customer): str(token) for customer, token in rows}

    async def make(
        self,
        customer: str,
        at: datetime,
        by: str,
        *,
        rotate: bool = False,
        audit: AuditEntry | None = None,
    ) -> str | None:
        """A new token for ``customer`` (stored hashed), returned once, with its ``audit`` line
        in the same transaction; None (nothing written) when the customer has a link and
        ``rotate`` is False (the existing link cannot be shown again)."""
        token = new_token()
        values = {
            "token_hash": token_hash(token),
            "token": token,
            "created_at": at,
            "created_by": by,
        }
        async with self._db.write() as conn:
            exists = (
                await conn.execute(
                    select(CUSTOMER_LINKS.c.customer).where(CUSTOMER_LINKS.c.customer == customer)
                )
            ).first() is not None
            if exists and not rotate:
                return None
            if exists:
                await conn.execute(
                    CUSTOMER_LINKS.update()
                    .where(CUSTOMER_LINKS.c.customer == customer)
                    .values(**values)
                )
            else:
                await conn.execute(CUSTOMER_LINKS.insert().values(customer=customer, **values))
            if audit is not None:
                await add_audit(conn, audit)
        return token

    async def revoke(self, customer: str) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                CUSTOMER_LINKS.delete().where(CUSTOMER_LINKS.c.customer == customer)
            )
        return bool(result.rowcount)
