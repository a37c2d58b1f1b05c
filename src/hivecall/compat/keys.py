"""API keys for the compat API: made by the owner, shown once, stored as SHA-256 only.

A key is a token of kind `api` with the one scope `compat`: it may list and use models on the
compat routes and nothing else of the hub's API. A key made with an agent is limited to that
agent (its id is the token's `subject`). Names are unique among live keys, so people revoke a
key by the name they gave it. `hivecall keys …` and the owner's `/api/keys` routes share this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hivecall.agents.records import NAME
from hivecall.compat.access import API_KIND, SCOPE
from hivecall.errors import Conflict, NotFound
from hivecall.http_api import authed, hub_of, ok, read_json
from hivecall.hub import Hub
from hivecall.store.models import Token


@dataclass(frozen=True)
class KeyInfo:
    """A key as people see it: never its value or its hash."""

    id: str
    name: str
    agent_id: str | None
    agent: str | None  # the agent's name; None when the key may use every agent
    created_at: datetime
    last_used_at: datetime | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "agent": self.agent,
            "agent_id": self.agent_id,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str
    agent: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(
                "name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return v


class Keys:
    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    async def create(self, spec: KeyCreate) -> tuple[str, KeyInfo]:
        """A new key; its value is returned here once and never stored."""
        agent = await self._hub.agents.get(spec.agent) if spec.agent else None
        if await self._find(spec.name) is not None:
            raise Conflict(f"a key called {spec.name!r} exists", code="key_exists")
        value, row = await self._hub.tokens.create(
            kind=API_KIND, scopes=(SCOPE,), name=spec.name, subject=agent.id if agent else None
        )
        return value, KeyInfo(
            row.id,
            row.name,
            row.subject,
            agent.name if agent else None,
            row.created_at,
            None,
        )

    async def list(self) -> list[KeyInfo]:
        async with self._hub.store.session() as s:
            rows = list(
                await s.scalars(
                    select(Token)
                    .where(Token.kind == API_KIND, Token.revoked_at.is_(None))
                    .order_by(Token.created_at, Token.name)
                )
            )
        names = {a.id: a.name for a in await self._hub.agents.list()}
        return [
            KeyInfo(
                r.id,
                r.name,
                r.subject,
                # A key for an agent that was removed since reaches nothing.
                names.get(r.subject, "(removed)") if r.subject else None,
                r.created_at,
                r.last_used_at,
            )
            for r in rows
        ]

    async def revoke(self, name: str) -> KeyInfo:
        """Revoke a live key by name: it fails at once in this process (elsewhere within 2 s)."""
        found = next((k for k in await self.list() if k.name == name), None)
        if found is None:
            raise NotFound(f"no key called {name!r}", code="key_not_found")
        await self._hub.tokens.revoke(found.id)
        return found

    async def _find(self, name: str) -> str | None:
        async with self._hub.store.session() as s:
            found: str | None = await s.scalar(
                select(Token.id).where(
                    Token.kind == API_KIND, Token.name == name, Token.revoked_at.is_(None)
                )
            )
        return found


# -- the owner's routes ----------------------------------------------------------------------


async def keys_list(request: Request) -> Response:
    await authed(request)
    keys = await Keys(hub_of(request)).list()
    return ok({"keys": [k.public() for k in keys]})


async def keys_create(request: Request) -> Response:
    await authed(request)
    spec = await read_json(request, KeyCreate)
    value, info = await Keys(hub_of(request)).create(spec)
    return ok({"key": info.public(), "token": value}, 201)


async def keys_revoke(request: Request) -> Response:
    await authed(request)
    info = await Keys(hub_of(request)).revoke(request.path_params["name"])
    return ok({"revoked": info.public()})


routes = [
    Route("/api/keys", keys_list, methods=["GET"]),
    Route("/api/keys", keys_create, methods=["POST"]),
    Route("/api/keys/{name}", keys_revoke, methods=["DELETE"]),
]
