"""Invite links to a cloud call: a friend opens /join/CODE, gives a name, and joins as a guest.

Codes are 128-bit random, shown once and stored as SHA-256 (like tokens: nothing to guess).
Each invite expires and is usable `max_uses` times; a use is one atomic UPDATE, so two friends
racing for the last use cannot both get in. The owner can revoke one.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select, update

from hivecall.errors import HivecallError, NotFound
from hivecall.store import Store
from hivecall.store.models import CallInvite


class InviteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_uses: int = Field(default=1, ge=1, le=50)
    ttl_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    name: str = Field(default="", max_length=200)


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _gone(message: str, code: str) -> HivecallError:
    return HivecallError(message, code=code, status=410)


@dataclass(frozen=True)
class Invite:
    row: CallInvite
    url: str = ""
    code: str = ""  # only when just made: it is never stored

    def public(self) -> dict[str, Any]:
        r = self.row
        out: dict[str, Any] = {
            "id": r.id,
            "name": r.name,
            "max_uses": r.max_uses,
            "uses": r.uses,
            "created_at": r.created_at.isoformat(),
            "expires_at": r.expires_at.isoformat(),
            "revoked": r.revoked_at is not None,
        }
        if self.code:
            out["code"] = self.code
            out["url"] = self.url
        return out


class Invites:
    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def create(self, call_id: str, spec: InviteIn, *, public_url: str) -> Invite:
        code = secrets.token_urlsafe(16)
        now = datetime.now(UTC)
        row = {
            "id": f"inv_{uuid.uuid4().hex[:16]}",
            "call_id": call_id,
            "code_hash": code_hash(code),
            "name": spec.name.strip(),
            "max_uses": spec.max_uses,
            "uses": 0,
            "created_at": now,
            "expires_at": now + timedelta(minutes=spec.ttl_minutes),
            "revoked_at": None,
        }
        async with self._store.engine.begin() as conn:
            await conn.execute(insert(CallInvite).values(**row))
        return Invite(CallInvite(**row), url=f"{public_url}/join/{code}", code=code)

    async def of_call(self, call_id: str) -> list[Invite]:
        q = (
            select(CallInvite)
            .where(CallInvite.call_id == call_id)
            .order_by(CallInvite.created_at, CallInvite.id)
        )
        async with self._store.session() as s:
            return [Invite(r) for r in (await s.scalars(q)).all()]

    async def revoke(self, call_id: str, invite_id: str) -> Invite:
        async with self._store.session() as s, s.begin():
            row = await s.get(CallInvite, invite_id)
            if row is None or row.call_id != call_id:
                raise NotFound("no such invite", code="invite_not_found")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
        return Invite(row)

    async def find(self, code: str) -> CallInvite:
        """The invite with this code if it can still be used, else why not."""
        async with self._store.session() as s:
            row = await s.scalar(select(CallInvite).where(CallInvite.code_hash == code_hash(code)))
        if row is None or row.revoked_at is not None:
            raise NotFound(
                "that invite link is not valid (ask for a new one)", code="invite_not_found"
            )
        if row.expires_at <= datetime.now(UTC):
            raise _gone("that invite link has expired: ask for a new one", "invite_expired")
        if row.uses >= row.max_uses:
            raise _gone("that invite link has been used up: ask for a new one", "invite_used")
        return row

    async def use(self, invite: CallInvite) -> None:
        """Spend one use; a friend who raced for the last one gets `invite_used`."""
        async with self._store.engine.begin() as conn:
            spent = await conn.execute(
                update(CallInvite)
                .where(
                    CallInvite.id == invite.id,
                    CallInvite.uses < CallInvite.max_uses,
                    CallInvite.revoked_at.is_(None),
                )
                .values(uses=CallInvite.uses + 1)
            )
        if not spent.rowcount:
            raise _gone("that invite link has been used up: ask for a new one", "invite_used")
