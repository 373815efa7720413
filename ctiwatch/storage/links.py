"""``store.customer_links``: the link of each customer's status page (``/status/<token>``).

Only the token's SHA-256 is stored: the link is shown once, when it is made. A token is 32
random bytes, so a plain hash is as good as a slow one here (nothing to guess), and it lets a
request find its customer by an indexed equality. Rotating replaces the hash: the old link
then finds nothing (404).
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
        values = {"token_hash": token_hash(token), "created_at": at, "created_by": by}
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
