"""Logging in to the real web app in tests: users and tokens made through the real
:class:`~ctiwatch.accounts.Accounts` (the service's own store), logins through the real login
form, and the CSRF token every form of the session needs.

``TEST_HASHER`` is argon2id with the smallest costs: the same code path as production (whose
costs are ``ctiwatch.accounts.password_hasher``), quick enough for hundreds of tests.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from ctiwatch.accounts import Accounts, LoginLimiter
from ctiwatch.clock import Clock
from ctiwatch.storage import Store

Client = TestClient[web.Request, web.Application]

TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_accounts(store: Store, clock: Clock, **options: Any) -> Accounts:
    """Accounts on the scene's store and clock. Sessions last 30 days unless ``options`` say
    otherwise: scenes move their clock by days."""
    options.setdefault("limiter", LoginLimiter(clock))
    options.setdefault("session_lifetime", timedelta(days=30))
    return Accounts(store, clock, hasher=TEST_HASHER, **options)


async def add_user(
    accounts: Accounts, username: str, role: str = "admin", phone: str | None = None
) -> None:
    await accounts.add_user(username, role, PASSWORD, phone=phone, by="test")


async def token_for(accounts: Accounts, name: str, role: str = "admin") -> str:
    secret, _ = await accounts.create_token(name, role, by="test")
    return secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def log_in(client: Client, username: str, password: str = PASSWORD) -> str:
    """Log in through the login form; returns (and keeps on ``client.csrf``) the session's
    CSRF token."""
    form = await client.get("/login")
    found = _CSRF.search(await form.text())
    assert found is not None, "the login form has no CSRF token"
    response = await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": found.group(1)},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    page = await client.get("/incidents")
    token = _CSRF.search(await page.text())
    assert token is not None, "a logged-in page has no CSRF token"
    client.csrf = token.group(1)  # type: ignore[attr-defined]
    return token.group(1)


def csrf_of(client: Client) -> str:
    return str(getattr(client, "csrf", ""))
