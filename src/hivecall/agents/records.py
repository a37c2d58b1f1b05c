"""Agent records: validation of what people type, and the store's CRUD for them."""

from __future__ import annotations

import os
import re
import shlex
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError

from hivecall.errors import BadRequest, Conflict, NotFound
from hivecall.runtimes import KINDS
from hivecall.runtimes.environment import refusal
from hivecall.runtimes.presets import PRESET_KIND, PRESETS
from hivecall.secretbox import SecretBox
from hivecall.store import Store
from hivecall.store.models import Agent, Meta


def default_machine() -> str:
    return socket.gethostname() or os.uname().nodename


CACHE_FOR = 2.0  # seconds

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_ENV = 32
# Meta key: the api_keys stored in clear before they were sealed have been sealed (once).
KEYS_SEALED = "agent_keys_sealed"


@dataclass(frozen=True)
class AgentRecord:
    """A detached, immutable snapshot of an agent row, safe to pass across tasks."""

    id: str
    name: str
    runtime: str
    preset: str | None
    command: tuple[str, ...]
    workspace: str | None
    machine: str
    skills: tuple[str, ...]
    base_url: str | None
    model: str | None
    description: str
    api_key: str | None
    created_at: datetime
    updated_at: datetime
    # Environment variables its processes get besides the allowlist: NAME -> its own value, or
    # None for the hub's value of NAME (runtimes/environment.py).
    env: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Agent, box: SecretBox) -> AgentRecord:
        return cls(
            id=row.id,
            name=row.name,
            runtime=row.runtime,
            preset=row.preset,
            command=tuple(row.command),
            workspace=row.workspace,
            machine=row.machine,
            skills=tuple(row.skills),
            base_url=row.base_url,
            model=row.model,
            description=row.description,
            api_key=_open(box, row.api_key, _key_context(row.id)),
            created_at=row.created_at,
            updated_at=row.updated_at,
            env={
                name: _open(box, value, _env_context(row.id, name))
                for name, value in (row.env or {}).items()
            },
        )

    def problem(self, search_path: str | None) -> str | None:
        """Why this agent cannot take a turn right now, or None when it can."""
        if self.workspace and not Path(self.workspace).is_dir():
            return f"workspace {self.workspace} is not a directory"
        return KINDS[self.runtime].problem(self, search_path)

    def public(self, *, status: str) -> dict[str, Any]:
        """What API clients see: everything but the API key (only whether one is set)."""
        return {
            "id": self.id,
            "name": self.name,
            "runtime": self.runtime,
            "preset": self.preset,
            "command": list(self.command),
            "workspace": self.workspace,
            "machine": self.machine,
            "skills": list(self.skills),
            "base_url": self.base_url,
            "model": self.model,
            "description": self.description,
            "api_key_set": bool(self.api_key),
            # Names only: whether each has a value of the agent's own or takes the hub's.
            "env": [{"name": k, "own_value": v is not None} for k, v in self.env.items()],
            "status": status,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


class AgentFields(BaseModel):
    """Fields shared by create and update; every one optional here."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    runtime: str | None = None
    command: str | list[str] | None = None
    workspace: str | None = None
    machine: str | None = Field(default=None, max_length=200)
    skills: list[str] | None = None
    base_url: str | None = None
    model: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    api_key: str | None = None
    # NAME (the hub's value of NAME) or NAME=VALUE (the agent's own); replaces the whole list.
    env: list[str] | None = None

    @field_validator("env")
    @classmethod
    def _env(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if len(v) > MAX_ENV:
            raise ValueError(f"env: at most {MAX_ENV} variables")
        for item in v:
            name, eq, value = item.partition("=")
            if why := refusal(name.strip(), inherit=not eq):
                raise ValueError(f"env: {why}")
            if len(value) > 4000:
                raise ValueError(f"env: the value of {name} is longer than 4000 characters")
        return v

    @field_validator("skills")
    @classmethod
    def _skills(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        cleaned = [s.strip() for s in v if s.strip()]
        if any(len(s) > 200 for s in cleaned) or len(cleaned) > 100:
            raise ValueError("skills: at most 100, each at most 200 characters")
        return cleaned


class AgentCreate(AgentFields):
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError(
                "name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return v


class AgentUpdate(AgentFields):
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return AgentCreate._name(v) if v is not None else v


def _normalise(values: dict[str, Any], search_path: str | None) -> dict[str, Any]:
    """Turn user input into stored columns, checking the parts that must make sense together.

    `runtime` may be a kind (command, openai_chat, echo) or a preset name (claude, codex…),
    which means the command runtime with that preset's command.
    """
    runtime = values["runtime"]
    if runtime in PRESETS:
        values["runtime"], values["preset"] = PRESET_KIND, runtime
        if not values.get("command"):
            values["command"] = list(PRESETS[runtime].argv)
    elif runtime not in KINDS:
        raise BadRequest(
            f"unknown runtime {runtime!r}: use one of {', '.join((*KINDS, *PRESETS))}",
            code="invalid_runtime",
        )
    kind = KINDS[values["runtime"]]
    if not kind.runs_command:
        if values.get("command"):
            raise BadRequest(
                f"--command only applies to command agents, not {runtime}", code="invalid_agent"
            )
        values["preset"] = None
    command = values.get("command")
    if isinstance(command, str):
        try:
            command = shlex.split(command)
        except ValueError as e:
            raise BadRequest(f"command: {e}", code="invalid_command") from e
    values["command"] = list(command or [])
    kind.check(values, search_path)
    if base := values.get("base_url"):
        if not re.match(r"^https?://", base):
            raise BadRequest("base_url must start with http:// or https://", code="invalid_agent")
        values["base_url"] = base.rstrip("/")
    if ws := values.get("workspace"):
        path = Path(ws).expanduser()
        if not path.is_dir():
            raise BadRequest(f"workspace {ws} is not a directory", code="workspace_not_found")
        values["workspace"] = str(path.resolve())
    return values


def parse_env(items: Sequence[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        name, eq, value = item.partition("=")
        out[name.strip()] = value if eq else None
    return out


def _key_context(agent_id: str) -> str:
    return f"agent:{agent_id}:api_key"


def _env_context(agent_id: str, name: str) -> str:
    return f"agent:{agent_id}:env:{name}"


def _open(box: SecretBox, sealed: str | None, context: str) -> str | None:
    return None if sealed is None else box.unseal(sealed, context=context)


def _seal(box: SecretBox, plain: str | None, context: str) -> str | None:
    return None if plain is None else box.seal(plain, context=context)


class Agents:
    def __init__(self, *, store: Store, search_path: str | None, box: SecretBox) -> None:
        """`search_path` is the PATH agent commands are looked up on (the agents' environment);
        `box` seals the agents' keys and own environment values at rest."""
        self._store = store
        self.search_path = search_path
        self._box = box

        # Every turn looks its agent up; records are kept for a moment. Writes through this
        # process clear the cache; edits by another process (the CLI) show within CACHE_FOR.
        self._cache: dict[str, tuple[float, AgentRecord]] = {}

    def problem(self, agent: AgentRecord) -> str | None:
        return agent.problem(self.search_path)

    def forget(self) -> None:
        self._cache.clear()

    async def list(self) -> list[AgentRecord]:
        async with self._store.session() as s:
            rows = await s.scalars(select(Agent).order_by(Agent.created_at, Agent.name))
            return [AgentRecord.of(r, self._box) for r in rows]

    async def get(self, ref: str) -> AgentRecord:
        """An agent by id or by name."""
        now = time.monotonic()
        hit = self._cache.get(ref)
        if hit is not None and now - hit[0] < CACHE_FOR:
            return hit[1]
        async with self._store.session() as s:
            row = await s.scalar(select(Agent).where(or_(Agent.id == ref, Agent.name == ref)))
        if row is None:
            self._cache.pop(ref, None)
            raise NotFound(f"no agent called {ref!r}", code="agent_not_found")
        record = AgentRecord.of(row, self._box)
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[ref] = (now, record)
        return record

    async def create(self, spec: AgentCreate) -> AgentRecord:
        values = spec.model_dump()
        values["runtime"] = values["runtime"] or ("command" if values.get("command") else "echo")
        values = _normalise(values, self.search_path)
        now = datetime.now(UTC)
        agent_id = uuid.uuid4().hex
        row = Agent(
            id=agent_id,
            name=values["name"],
            runtime=values["runtime"],
            preset=values.get("preset"),
            command=values["command"],
            workspace=values.get("workspace"),
            machine=values.get("machine") or default_machine(),
            skills=values.get("skills") or [],
            base_url=values.get("base_url"),
            model=values.get("model"),
            description=values.get("description") or "",
            api_key=_seal(self._box, values.get("api_key") or None, _key_context(agent_id)),
            env=self._sealed_env(agent_id, values.get("env") or []),
            created_at=now,
            updated_at=now,
        )
        self.forget()
        try:
            async with self._store.session() as s, s.begin():
                s.add(row)
        except IntegrityError as e:
            raise Conflict(f"an agent called {spec.name!r} exists", code="agent_exists") from e
        return AgentRecord.of(row, self._box)

    async def update(self, ref: str, patch: AgentUpdate) -> AgentRecord:
        self.forget()  # a write starts from the stored record, not a cached one
        current = await self.get(ref)
        changes = patch.model_dump(exclude_unset=True)
        merged = {
            "name": current.name,
            "runtime": current.preset or current.runtime,
            "command": list(current.command),
            "workspace": current.workspace,
            "base_url": current.base_url,
            "model": current.model,
            **changes,
        }
        # A new preset brings its own command unless one was given.
        if "runtime" in changes and "command" not in changes:
            merged["command"] = None
        merged = _normalise(merged, self.search_path)
        merged.setdefault("preset", current.preset)
        columns = {
            k: merged[k]
            for k in ("name", "runtime", "preset", "command", "workspace", "base_url", "model")
        }
        cleared: dict[str, Any] = {
            "machine": default_machine(),
            "skills": [],
            "description": "",
            "api_key": None,
        }
        for k, empty in cleared.items():
            if k in changes:
                columns[k] = changes[k] or empty
        if columns.get("api_key") is not None:
            columns["api_key"] = _seal(self._box, columns["api_key"], _key_context(current.id))
        if "env" in changes:
            columns["env"] = self._sealed_env(current.id, changes["env"] or [])
        self.forget()
        try:
            async with self._store.session() as s, s.begin():
                row = await s.get(Agent, current.id)
                if row is None:
                    raise NotFound(f"no agent called {ref!r}", code="agent_not_found")
                for k, v in columns.items():
                    setattr(row, k, v)
                row.updated_at = datetime.now(UTC)
        except IntegrityError as e:
            raise Conflict(f"an agent called {merged['name']!r} exists", code="agent_exists") from e
        return AgentRecord.of(row, self._box)

    def _sealed_env(self, agent_id: str, items: Sequence[str]) -> dict[str, str | None]:
        return {
            name: _seal(self._box, value, _env_context(agent_id, name))
            for name, value in parse_env(items).items()
        }

    async def seal_plain_keys(self) -> int:
        """Seal the api_keys an older hivecall stored in clear, once per store; returns how many.

        The meta row is written first in the same transaction, so two processes opening an old
        store at once cannot both seal (the second one's insert conflicts and it does nothing).
        """
        if await self._store.get_meta(KEYS_SEALED):
            return 0
        count = 0
        try:
            async with self._store.session() as s, s.begin():
                s.add(Meta(key=KEYS_SEALED, value="1"))
                await s.flush()
                for row in await s.scalars(select(Agent).where(Agent.api_key.is_not(None))):
                    assert row.api_key is not None
                    row.api_key = self._box.seal(row.api_key, context=_key_context(row.id))
                    count += 1
        except IntegrityError:
            return 0
        self.forget()
        return count

    async def delete(self, ref: str) -> AgentRecord:
        self.forget()  # a write starts from the stored record, not a cached one
        current = await self.get(ref)
        self.forget()
        async with self._store.session() as s, s.begin():
            await s.execute(delete(Agent).where(Agent.id == current.id))
        return current
