"""Bearer tokens: minted once, shown once, stored as SHA-256, checked on every `/api/*` request.

Tokens are 256-bit random strings, so a fast hash is enough (there is nothing to brute-force).
The owner token may do everything; later scoped kinds (device, worker, api) carry a list of
scopes and a subject (the device or call they belong to). Verified principals are cached in
memory for a moment: a revocation through this process clears the cache and bites at once; one
made by another process (the CLI) bites within CACHE_FOR.

Wrong tokens are throttled per source address (`authenticate`): after AUTH_FAILURES in
AUTH_WINDOW, tokens this process has not seen valid are refused with 429 without being looked up,
while the tokens it knows (the owner's session, paired phones, keys in use) go on working.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from hivecall.ratelimit import Limiter
from hivecall.store import Store
from hivecall.store.models import Token

OWNER = "owner"
# The browser's login: a session token in this cookie (web/pages.py sets it).
SESSION_COOKIE = "hivecall_session"
SESSION = "session"  # a browser signed in with the owner token
ALL_SCOPES = ("*",)
# A cloud call's worker: its token's subject is the call, and it may only relay turns into that
# call and report its phases and lines (calls/cloud/rooms.py).
WORKER = "worker"
WORKER_SCOPE = "call:worker"
SESSION_TTL = timedelta(days=30)
# last_used_at is a hint for people ("last seen"), not an audit log: write it at most this often.
LAST_USED_EVERY = timedelta(minutes=1)
CACHE_FOR = timedelta(seconds=2)
# Wrong tokens allowed per source address within AUTH_WINDOW seconds; beyond, 429 until it passes.
AUTH_FAILURES = 10
AUTH_WINDOW = 60.0


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class Principal:
    token_id: str
    kind: str
    scopes: tuple[str, ...]
    subject: str | None = None
    name: str = ""

    def can(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes

    @property
    def caller(self) -> str:
        """Whose sessions this principal's turns are: the owner (by token or browser login) is
        one caller; a device, key or call is its own."""
        if self.kind in (OWNER, SESSION):
            return "owner"
        return f"{self.kind}:{self.subject or self.token_id}"


@dataclass
class _Cached:
    principal: Principal
    expires_at: datetime | None
    last_used_at: datetime | None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class Tokens:
    def __init__(self, *, store: Store) -> None:
        self._store = store
        self._cache: dict[str, _Cached] = {}
        self.failures = Limiter(
            limit=AUTH_FAILURES,
            window=AUTH_WINDOW,
            message="too many wrong tokens from this address: wait a minute and try again",
            code="auth_rate_limited",
        )

    async def create(
        self,
        *,
        kind: str,
        scopes: tuple[str, ...],
        name: str = "",
        subject: str | None = None,
        ttl: timedelta | None = None,
        value: str | None = None,
    ) -> tuple[str, Token]:
        """Store a new token; the plain value is returned once and never kept."""
        value = value or new_token(f"hc{kind[0]}")
        row = Token(
            id=uuid.uuid4().hex,
            kind=kind,
            name=name,
            token_hash=hash_token(value),
            scopes=list(scopes),
            subject=subject,
            expires_at=datetime.now(UTC) + ttl if ttl else None,
        )
        async with self._store.session() as s, s.begin():
            s.add(row)
        # Known from the start, so a throttled address is not kept from a token just made.
        self._cache[row.token_hash] = _Cached(
            Principal(row.id, row.kind, tuple(row.scopes), row.subject, row.name),
            row.expires_at,
            None,
        )
        return value, row

    async def authenticate(self, value: str, *, source: str) -> Principal | None:
        """`verify`, with wrong tokens counted against `source` (429 once it has too many)."""
        if hash_token(value) in self._cache:  # seen valid: never held up
            return await self.verify(value)
        mark = self.failures.begin(source)
        principal = await self.verify(value)
        if principal is not None:
            self.failures.forgive(source, mark)
        return principal

    async def verify(self, value: str) -> Principal | None:
        digest = hash_token(value)
        now = datetime.now(UTC)
        hit = self._cache.get(digest)
        if hit is None or now - hit.checked_at >= CACHE_FOR:
            async with self._store.session() as s:
                row = await s.scalar(
                    select(Token).where(Token.token_hash == digest, Token.revoked_at.is_(None))
                )
            if row is None:
                self._cache.pop(digest, None)
                return None
            hit = _Cached(
                Principal(row.id, row.kind, tuple(row.scopes), row.subject, row.name),
                row.expires_at,
                row.last_used_at,
            )
            self._cache[digest] = hit
        if hit.expires_at is not None and hit.expires_at <= now:
            return None
        if hit.last_used_at is None or now - hit.last_used_at >= LAST_USED_EVERY:
            hit.last_used_at = now
            async with self._store.session() as s, s.begin():
                await s.execute(
                    update(Token).where(Token.id == hit.principal.token_id).values(last_used_at=now)
                )
        return hit.principal

    async def revoke(self, token_id: str) -> bool:
        async with self._store.session() as s, s.begin():
            result = await s.execute(
                update(Token)
                .where(Token.id == token_id, Token.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        self._cache.clear()
        return bool(getattr(result, "rowcount", 0))

    async def revoke_kind(self, kind: str) -> None:
        async with self._store.session() as s, s.begin():
            await s.execute(
                update(Token)
                .where(Token.kind == kind, Token.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        self._cache.clear()

    async def revoke_subject(self, kind: str, subject: str) -> None:
        async with self._store.session() as s, s.begin():
            await s.execute(
                update(Token)
                .where(Token.kind == kind, Token.subject == subject, Token.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        self._cache.clear()

    async def ensure_owner(self, configured: str) -> str | None:
        """Make sure an owner token exists. Returns a newly generated value to show once.

        A configured token (HIVECALL_OWNER_TOKEN) replaces any stored one; with none configured
        a token is generated on the first start only.
        """
        if configured:
            async with self._store.session() as s:
                current = await s.scalar(
                    select(Token).where(
                        Token.kind == OWNER,
                        Token.revoked_at.is_(None),
                        Token.token_hash == hash_token(configured),
                    )
                )
            if current is None:
                await self.revoke_kind(OWNER)
                await self.create(kind=OWNER, scopes=ALL_SCOPES, name="owner", value=configured)
            return None
        async with self._store.session() as s:
            existing = await s.scalar(
                select(Token.id).where(Token.kind == OWNER, Token.revoked_at.is_(None))
            )
        if existing is not None:
            return None
        value, _ = await self.create(kind=OWNER, scopes=ALL_SCOPES, name="owner")
        return value

    async def reset_owner(self) -> str:
        """Revoke the owner token and every browser session; return a new owner token."""
        await self.revoke_kind(OWNER)
        await self.revoke_kind("session")
        value, _ = await self.create(kind=OWNER, scopes=ALL_SCOPES, name="owner")
        return value
