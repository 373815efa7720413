"""People and automation: users with roles, logins, sessions, API tokens and the audit log.

The web (:mod:`ctiwatch.web.auth`) and the CLI (``ctiwatch users``/``tokens``) both go through
:class:`Accounts`. Passwords are argon2id hashes (``argon2-cffi``); session and token secrets
are random and only their SHA-256 is stored. Logins are rate limited per account and per
address on the injected clock. Every change writes an audit line in the same transaction.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import logging
import re
import secrets
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ctiwatch.clock import Clock
from ctiwatch.errors import PHONE_PATTERN
from ctiwatch.storage import Store
from ctiwatch.storage.accounts import (
    ROLES,
    AlreadyExists,
    AuditEntry,
    Role,
    SessionRecord,
    TokenRecord,
    UserRecord,
)

log = logging.getLogger("ctiwatch.accounts")

ROLE_RANK: dict[str, int] = {role: rank for rank, role in enumerate(ROLES)}
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
TOKEN_PREFIX = "ctw_"
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
# How long a looked-up session or token is trusted without asking the database again (on the
# clock): the pages stay fast under a wall screen's polling. A logout, revocation, disabled
# user or new password in this process takes effect at once; one made by the CLI (another
# process) within this many seconds.
LOOKUP_SECONDS = 5.0
_LOOKUPS_KEPT = 10_000

__all__ = [
    "ROLES",
    "ROLE_RANK",
    "AccountError",
    "Accounts",
    "AlreadyExists",
    "AuditEntry",
    "LoginLimiter",
    "LoginRefused",
    "LookupUnavailable",
    "Role",
    "SessionRecord",
    "TokenRecord",
    "UserRecord",
    "password_hasher",
]


def password_hasher() -> PasswordHasher:
    """argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about a fifth of a
    second per hash here, so a login is quick and guessing stays expensive."""
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def at_least(role: str, needed: str) -> bool:
    """``role`` may do what ``needed`` may (viewer < oncall < maintainer < admin)."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


class AccountError(ValueError):
    """Bad input for an account or token, naming the field (``username: ...``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class LookupUnavailable(Exception):
    """The database cannot be asked who a session or token is, and this process has not seen
    it before: nobody can be let in (503)."""


class LoginRefused(Exception):
    """A login that did not succeed: the words say why without telling which part was wrong;
    ``status`` 401 (wrong) or 429 (too many failures, ``retry_after`` seconds)."""

    def __init__(self, message: str, status: int = 401, retry_after: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after


def check_username(username: str) -> str:
    name = username.strip()
    if not USERNAME.fullmatch(name):
        raise AccountError(
            "username: must be 1 to 64 lowercase letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit, not {username!r}",
            "username",
        )
    return name


def check_role(role: str) -> Role:
    for known in ROLES:
        if known == role:
            return known
    raise AccountError(f"role: must be one of {', '.join(ROLES)}, not {role!r}", "role")


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: must be at least {MIN_PASSWORD} characters", "password")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"password: must be at most {MAX_PASSWORD} characters", "password")
    return password


def check_phone(phone: str | None) -> str | None:
    if phone is None or phone == "":
        return None
    cleaned = phone.replace("(0)", "").replace(" ", "").replace("-", "")
    if not re.fullmatch(PHONE_PATTERN, cleaned):
        raise AccountError(
            f"phone: must be a number in international form such as +31612345678, not {phone!r}",
            "phone",
        )
    return cleaned


class LoginLimiter:
    """At most ``max_failures`` failed logins per account and per address in ``window``;
    past that, refused until the oldest failure leaves the window. Kept in memory: a restart
    forgets it (the window is short)."""

    def __init__(self, clock: Clock, max_failures: int = 5, window: timedelta | None = None):
        self._clock = clock
        self.max_failures = max_failures
        self.window = window or timedelta(minutes=15)
        self._failures: dict[str, deque[datetime]] = defaultdict(deque)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return deque()
        return failures

    def wait(self, keys: list[str]) -> int:
        """Seconds until a login for ``keys`` may be tried again; 0 when it may now."""
        now = self._clock.now()
        longest = 0.0
        for key in keys:
            failures = self._recent(key, now)
            if len(failures) >= self.max_failures:
                free_at = failures[-self.max_failures] + self.window
                longest = max(longest, (free_at - now).total_seconds())
        return int(longest) + (1 if longest % 1 else 0)

    def failed(self, keys: list[str]) -> None:
        now = self._clock.now()
        for key in keys:
            self._recent(key, now)
            self._failures[key].append(now)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


def cli_actor() -> str:
    """Who acts from the command line, directly on the database (``ctiwatch users``,
    ``tokens``, ``customers link``, ``agents retire|silence|activate``): the operating
    system's user, marked ``(cli)``, on every audit line and stored decision. Never a typed
    name: whoever can run these can read the configuration and the database anyway, and the
    system account is what says who they are."""
    try:
        name = getpass.getuser().strip()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        name = ""
    return f"{name or 'unknown'} (cli)"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a logged-in user (``session``) or an API token (``token``)."""

    name: str
    role: Role
    kind: str  # "session" | "token"
    csrf_token: str = ""
    session_hash: str = ""

    def may(self, needed: str) -> bool:
        return at_least(self.role, needed)


class Accounts:
    """Users, sessions and tokens over ``store.accounts``, on ``clock``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        session_lifetime: timedelta = timedelta(hours=12),
        limiter: LoginLimiter | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._repo = store.accounts
        self._clock = clock
        self.session_lifetime = session_lifetime
        self.limiter = limiter or LoginLimiter(clock)
        self._hasher = hasher or password_hasher()
        # A hash to verify against when the username is unknown: the answer takes as long.
        self._dummy: str | None = None
        # When each token's last use was stored: at most one write a minute per token.
        self._used: dict[int, datetime] = {}
        # Recent lookups by secret hash: (when, what was found).
        self._seen: dict[str, tuple[datetime, SessionRecord | TokenRecord | None]] = {}

    @property
    def clock(self) -> Clock:
        return self._clock

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, hashed: str, password: str) -> bool:
        def verify() -> bool:
            try:
                return self._hasher.verify(hashed, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(verify)

    def _line(
        self, actor: str, action: str, target: str, detail: str = "", address: str = ""
    ) -> AuditEntry:
        return AuditEntry(self._clock.now(), actor, action, target, detail, address)

    # --- users -------------------------------------------------------------------------------

    async def add_user(
        self,
        username: str,
        role: str,
        password: str,
        *,
        phone: str | None = None,
        by: str,
        address: str = "",
    ) -> UserRecord:
        name = check_username(username)
        checked_role = check_role(role)
        check_password(password)
        number = check_phone(phone)
        if await self._repo.user(name) is not None:
            raise AccountError(f"username: user {name!r} exists already", "username")
        hashed = await self._hash(password)
        detail = f"role {checked_role}" + (f", phone {number}" if number else "")
        try:
            return await self._repo.add_user(
                name,
                checked_role,
                hashed,
                self._clock.now(),
                phone=number,
                audit=self._line(by, "user.add", f"user {name}", detail, address),
            )
        except AlreadyExists as exc:
            raise AccountError(f"username: {exc}", "username") from None

    async def users(self) -> list[UserRecord]:
        return await self._repo.users()

    async def user(self, username: str) -> UserRecord | None:
        return await self._repo.user(username)

    async def count_users(self) -> int:
        return await self._repo.count_users()

    async def set_password(
        self, username: str, password: str, *, by: str, address: str = ""
    ) -> UserRecord:
        """A new password; the user's sessions end."""
        check_password(password)
        hashed = await self._hash(password)
        changed = await self._repo.update_user(
            username,
            password_hash=hashed,
            password_changed_at=self._clock.now(),
            audit=self._line(by, "user.passwd", f"user {username}", "", address),
        )
        self.forget_lookups()
        if changed is None:
            raise AccountError(f"username: no user {username!r}", "username")
        return changed

    async def disable_user(self, username: str, *, by: str, address: str = "") -> UserRecord:
        """The user can no longer log in; their sessions end. Kept, as the audit's history."""
        user = await self._repo.user(username)
        if user is None:
            raise AccountError(f"username: no user {username!r}", "username")
        if user.disabled_at is not None:
            return user
        changed = await self._repo.update_user(
            username,
            disabled_at=self._clock.now(),
            audit=self._line(by, "user.disable", f"user {username}", "", address),
        )
        self.forget_lookups()
        assert changed is not None
        return changed

    async def set_phone(
        self, username: str, phone: str | None, *, by: str, address: str = ""
    ) -> UserRecord:
        number = check_phone(phone)
        changed = await self._repo.update_user(
            username,
            phone=number,
            audit=self._line(by, "user.phone", f"user {username}", number or "none", address),
        )
        if changed is None:
            raise AccountError(f"username: no user {username!r}", "username")
        return changed

    async def person_with_phone(self, phone: str) -> str | None:
        """The username of the one active user with this phone number, if there is one."""
        found = [u for u in await self._repo.users_with_phone(phone) if u.active]
        return found[0].username if len(found) == 1 else None

    # --- logins and sessions -----------------------------------------------------------------

    async def login(self, username: str, password: str, address: str) -> tuple[str, SessionRecord]:
        """A new session for ``username``: ``(cookie secret, session)``. Raises
        :class:`LoginRefused` (401 wrong name or password, or disabled; 429 too many tries)."""
        name = username.strip().lower()[:64]
        keys = [f"user:{name}", f"address:{address}"]
        wait = self.limiter.wait(keys)
        if wait:
            log.warning("login refused: too many failures", extra={"user": name, "from": address})
            raise LoginRefused(
                f"Too many failed logins; try again in {max(1, (wait + 59) // 60)} minute(s).",
                429,
                wait,
            )
        user = await self._repo.user(name) if USERNAME.fullmatch(name) else None
        if user is None:
            if self._dummy is None:
                self._dummy = await self._hash(secrets.token_urlsafe(16))
            await self._verify(self._dummy, password)
            ok = False
        else:
            ok = await self._verify(user.password_hash, password) and user.active
        if not ok or user is None:
            self.limiter.failed(keys)
            log.warning("login failed", extra={"user": name, "from": address})
            await self._repo.audit(self._line(name or "?", "login.failed", "", "", address))
            raise LoginRefused("Wrong username or password.")
        self.limiter.succeeded(keys[0])
        secret = secrets.token_urlsafe(32)
        now = self._clock.now()
        session = await self._repo.add_session(
            secret_hash(secret),
            user,
            secrets.token_urlsafe(32),
            now,
            now + self.session_lifetime,
            address,
            audit=self._line(user.username, "login", f"user {user.username}", "", address),
        )
        return secret, session

    def _recent(self, key: str) -> tuple[bool, SessionRecord | TokenRecord | None]:
        seen = self._seen.get(key)
        if seen is None:
            return False, None
        at, found = seen
        if (self._clock.now() - at).total_seconds() >= LOOKUP_SECONDS:
            return False, None
        return True, found

    async def _lookup(
        self, key: str, ask: Callable[[str], Awaitable[SessionRecord | TokenRecord | None]]
    ) -> SessionRecord | TokenRecord | None:
        """``ask(hash)`` of the database, remembered; while the database does not answer, what
        was last seen of the same secret (a logged-in wall screen or scraper keeps working
        through an outage), else :class:`LookupUnavailable`."""
        known, cached = self._recent(key)
        if known:
            return cached
        try:
            found = await ask(key[2:])
        except Exception as exc:
            stale = self._seen.get(key)
            if stale is None:
                raise LookupUnavailable(str(exc)) from exc
            return stale[1]
        self._remember(key, found)
        return found

    def _remember(self, key: str, found: SessionRecord | TokenRecord | None) -> None:
        if len(self._seen) >= _LOOKUPS_KEPT:
            self._seen.clear()
        self._seen[key] = (self._clock.now(), found)

    def forget_lookups(self) -> None:
        """Ask the database again for every session and token (after a change to them)."""
        self._seen.clear()

    async def session(self, secret: str) -> SessionRecord | None:
        """The live session whose cookie holds ``secret``: None when unknown, expired (on the
        clock) or its user is disabled."""
        if not secret or len(secret) > 200:
            return None
        looked = await self._lookup("s:" + secret_hash(secret), self._repo.session)
        found = looked if isinstance(looked, SessionRecord) else None
        if found is None or found.expires_at <= self._clock.now() or not found.user.active:
            return None
        return found

    async def logout(self, session: SessionRecord, address: str = "") -> None:
        who = session.user.username
        await self._repo.delete_session(
            session.id_hash, audit=self._line(who, "logout", f"user {who}", "", address)
        )
        self.forget_lookups()

    # --- tokens ------------------------------------------------------------------------------

    async def create_token(
        self, name: str, role: str, *, kiosk: bool = False, by: str, address: str = ""
    ) -> tuple[str, TokenRecord]:
        """A new token: ``(secret, record)``; the secret is shown once and never stored."""
        token_name = name.strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.@-]{0,63}", token_name):
            raise AccountError(
                "name: must be 1 to 64 letters, digits, spaces, '.', '_', '@' or '-', "
                f"not {name!r}",
                "name",
            )
        checked_role = check_role(role)
        if kiosk and checked_role != "viewer":
            raise AccountError("role: a kiosk link is read-only: its role must be viewer", "role")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        kind = "kiosk link" if kiosk else "token"
        try:
            record = await self._repo.add_token(
                token_name,
                checked_role,
                secret_hash(secret),
                secret[: len(TOKEN_PREFIX) + 6],
                kiosk=kiosk,
                created_by=by,
                now=self._clock.now(),
                audit=self._line(
                    by, "token.create", f"token {token_name}", f"{kind}, role {role}", address
                ),
            )
        except AlreadyExists as exc:
            raise AccountError(f"name: {exc}", "name") from None
        return secret, record

    async def tokens(self) -> list[TokenRecord]:
        return await self._repo.tokens()

    async def token(self, secret: str) -> TokenRecord | None:
        """The active token ``secret`` is; records when it was last used (once a minute)."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        looked = await self._lookup("t:" + secret_hash(secret), self._repo.token_by_hash)
        found = looked if isinstance(looked, TokenRecord) else None
        if found is None or not found.active:
            return None
        now = self._clock.now()
        last = self._used.get(found.id)
        if last is None or now - last >= timedelta(minutes=1):
            self._used[found.id] = now
            try:
                await self._repo.token_used(found.id, now)
            except Exception as exc:  # the database is away: the use goes unrecorded
                log.warning("token use not stored", extra={"token": found.name, "error": str(exc)})
        return found

    async def revoke_token(self, name: str, *, by: str, address: str = "") -> TokenRecord:
        revoked = await self._repo.revoke_token(
            name,
            self._clock.now(),
            audit=self._line(by, "token.revoke", f"token {name}", "", address),
        )
        self.forget_lookups()
        if revoked is None:
            raise AccountError(f"name: no token named {name!r}", "name")
        return revoked

    # --- audit -------------------------------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> None:
        await self._repo.audit(entry)

    async def audit_log(self, limit: int = 200, actor: str | None = None) -> list[AuditEntry]:
        return await self._repo.audit_log(limit, actor)

    # --- the first admin ---------------------------------------------------------------------

    async def ensure_admin(self, username: str | None, password: str | None) -> str | None:
        """At start: the demo admin the configuration names (created if missing, password as
        configured), or, without one and without any user, an ``admin`` with a one-time
        password, which is returned (to be printed once)."""
        if username and password:
            if await self._repo.user(username) is None:
                try:
                    await self.add_user(username, "admin", password, by="ctiwatch")
                except AccountError:
                    if await self._repo.user(username) is None:
                        raise
                    return None  # another worker starting at the same time created it
                log.info("demo admin created", extra={"user": username})
            return None
        if await self._repo.count_users():
            return None
        one_time = secrets.token_urlsafe(12)
        try:
            await self.add_user("admin", "admin", one_time, by="ctiwatch")
        except AccountError:
            if await self._repo.user("admin") is None:
                raise
            return None  # another worker starting at the same time created it (and told it)
        return one_time
