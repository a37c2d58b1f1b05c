"""HiveMind clients in the store: add, list, change rights, delete.

Access keys are stored as their SHA-256 (a connection looks its key up by hash); passwords are
sealed with the home's secret box, since both ends need the password itself to derive keys.
Every change bumps a version in the store's meta table; a running listener polls it and
applies the change to live connections (a deleted client is disconnected, changed rights apply
to its next message).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError

from hivecall.agents.records import Agents
from hivecall.errors import BadRequest, Conflict, NotFound
from hivecall.hivemind.permissions import DEFAULT_ALLOWED_TYPES, ClientRecord
from hivecall.secretbox import SecretBox
from hivecall.store import Store
from hivecall.store.models import HiveClient

VERSION_KEY = "hivemind_clients_version"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ACCESS_KEY = re.compile(r"^[\x21-\x7e]{8,256}$")  # printable ASCII, no spaces
MSG_TYPE = re.compile(r"^[\x21-\x7e]{1,256}$")


def key_hash(access_key: str) -> str:
    return hashlib.sha256(access_key.encode()).hexdigest()


def _context(client_id: str) -> str:
    return f"hivemind-client:{client_id}"


@dataclass(frozen=True)
class ClientView:
    """What people see of a client: never its key or password."""

    id: str
    name: str
    agent: str | None
    admin: bool
    allowed_types: list[str]
    message_blacklist: list[str]
    skill_blacklist: list[str]
    intent_blacklist: list[str]
    can_escalate: bool
    can_propagate: bool
    can_broadcast: bool
    created_at: str

    def public(self) -> dict[str, Any]:
        return dict(self.__dict__)


FLAGS = ("can_escalate", "can_propagate", "can_broadcast", "is_admin")
LISTS = ("allowed_types", "message_blacklist", "skill_blacklist", "intent_blacklist")


class HiveClients:
    def __init__(self, *, store: Store, box: SecretBox, agents: Agents) -> None:
        self._store = store
        self._box = box
        self._agents = agents

    # -- reading ------------------------------------------------------------------------------

    async def records(self) -> list[ClientRecord]:
        """Every client with its password unsealed, for the listener."""
        async with self._store.session() as s:
            rows = list(await s.scalars(select(HiveClient)))
        return [self._record(r) for r in rows]

    def _record(self, r: HiveClient) -> ClientRecord:
        return ClientRecord(
            id=r.id,
            name=r.name,
            key_hash=r.key_hash,
            password=self._box.unseal(r.password, context=_context(r.id)),
            agent_id=r.agent_id,
            is_admin=r.is_admin,
            allowed_types=frozenset(r.allowed_types),
            message_blacklist=frozenset(r.message_blacklist),
            skill_blacklist=tuple(r.skill_blacklist),
            intent_blacklist=tuple(r.intent_blacklist),
            can_escalate=r.can_escalate,
            can_propagate=r.can_propagate,
            can_broadcast=r.can_broadcast,
        )

    async def version(self) -> str:
        return await self._store.get_meta(VERSION_KEY) or "0"

    async def list(self) -> list[ClientView]:
        async with self._store.session() as s:
            rows = list(await s.scalars(select(HiveClient).order_by(HiveClient.name)))
        names = {a.id: a.name for a in await self._agents.list()}
        return [self._view(r, names) for r in rows]

    async def get(self, ref: str) -> ClientView:
        row = await self._row(ref)
        names = {a.id: a.name for a in await self._agents.list()}
        return self._view(row, names)

    def _view(self, r: HiveClient, names: dict[str, str]) -> ClientView:
        return ClientView(
            id=r.id,
            name=r.name,
            agent=names.get(r.agent_id) if r.agent_id else None,
            admin=r.is_admin,
            allowed_types=list(r.allowed_types),
            message_blacklist=list(r.message_blacklist),
            skill_blacklist=list(r.skill_blacklist),
            intent_blacklist=list(r.intent_blacklist),
            can_escalate=r.can_escalate,
            can_propagate=r.can_propagate,
            can_broadcast=r.can_broadcast,
            created_at=r.created_at.isoformat(timespec="seconds"),
        )

    async def _row(self, ref: str) -> HiveClient:
        async with self._store.session() as s:
            row = await s.scalar(
                select(HiveClient).where(or_(HiveClient.id == ref, HiveClient.name == ref))
            )
        if row is None:
            raise NotFound(f"no HiveMind client called {ref!r}", code="hivemind_client_not_found")
        return row

    # -- writing ------------------------------------------------------------------------------

    async def add(
        self,
        *,
        name: str,
        access_key: str | None = None,
        password: str | None = None,
        agent: str | None = None,
        admin: bool = False,
    ) -> tuple[ClientView, str, str]:
        """Add a client; returns it with its access key and password (generated if not given)."""
        if not NAME.match(name):
            raise BadRequest(
                "a client name is 1-64 letters, digits, '.', '_' or '-'", code="invalid_client"
            )
        access_key = access_key or secrets.token_hex(16)
        password = password or secrets.token_urlsafe(18)
        if not ACCESS_KEY.match(access_key):
            raise BadRequest(
                "the access key must be 8-256 printable ASCII characters without spaces",
                code="invalid_client",
            )
        if not 8 <= len(password) <= 256 or not password.isprintable():
            raise BadRequest(
                "the password must be 8-256 printable characters", code="invalid_client"
            )
        agent_id = (await self._agents.get(agent)).id if agent else None
        client_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        row = HiveClient(
            id=client_id,
            name=name,
            key_hash=key_hash(access_key),
            password=self._box.seal(password, context=_context(client_id)),
            agent_id=agent_id,
            is_admin=admin,
            allowed_types=list(DEFAULT_ALLOWED_TYPES),
            message_blacklist=[],
            skill_blacklist=[],
            intent_blacklist=[],
            can_escalate=True,
            can_propagate=False,
            can_broadcast=admin,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._store.session() as s, s.begin():
                s.add(row)
        except IntegrityError as e:
            raise Conflict(
                "a HiveMind client with that name or access key exists",
                code="hivemind_client_exists",
            ) from e
        await self._bump()
        names = {a.id: a.name for a in await self._agents.list()}
        return self._view(row, names), access_key, password

    async def delete(self, ref: str) -> ClientView:
        view = await self.get(ref)
        async with self._store.session() as s, s.begin():
            await s.execute(delete(HiveClient).where(HiveClient.id == view.id))
        await self._bump()
        return view

    async def set_flag(self, ref: str, flag: str, value: bool) -> ClientView:
        if flag not in FLAGS:
            raise BadRequest(f"unknown flag {flag!r}", code="invalid_client")
        return await self._change(ref, lambda row: setattr(row, flag, value))

    async def set_agent(self, ref: str, agent: str | None) -> ClientView:
        agent_id = (await self._agents.get(agent)).id if agent else None
        return await self._change(ref, lambda row: setattr(row, "agent_id", agent_id))

    async def list_add(self, ref: str, field: str, value: str) -> ClientView:
        return await self._list_edit(ref, field, value, add=True)

    async def list_remove(self, ref: str, field: str, value: str) -> ClientView:
        return await self._list_edit(ref, field, value, add=False)

    async def _list_edit(self, ref: str, field: str, value: str, *, add: bool) -> ClientView:
        if field not in LISTS:
            raise BadRequest(f"unknown list {field!r}", code="invalid_client")
        if not MSG_TYPE.match(value):
            raise BadRequest("a name is 1-256 printable characters", code="invalid_client")

        def edit(row: HiveClient) -> None:
            items = [v for v in getattr(row, field) if v != value]
            if add:
                items.append(value)
            setattr(row, field, items)  # a new list, so the JSON column sees the change

        return await self._change(ref, edit)

    async def _change(self, ref: str, edit: Callable[[HiveClient], None]) -> ClientView:
        current = await self._row(ref)
        async with self._store.session() as s, s.begin():
            row = await s.get(HiveClient, current.id)
            if row is None:
                raise NotFound(
                    f"no HiveMind client called {ref!r}", code="hivemind_client_not_found"
                )
            edit(row)
            row.updated_at = datetime.now(UTC)
        await self._bump()
        return await self.get(current.id)

    async def _bump(self) -> None:
        await self._store.set_meta(VERSION_KEY, uuid.uuid4().hex)
