"""Tables of the store. Alembic migrations in `migrations/` create them; keep both in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Dialect, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are UTC and come back timezone-aware on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Meta(Base):
    """Small facts about this hub (e.g. whether first-start set-up ran)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Token(Base):
    """A bearer credential, stored as the SHA-256 of its value.

    kind is owner, session (a browser login), and later device, worker or api; scopes say what it
    may do; subject ties a scoped token to what it is for (a device id, a call id…).
    """

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Agent(Base):
    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    runtime: Mapped[str] = mapped_column(String(32))
    preset: Mapped[str | None] = mapped_column(String(32), default=None)
    command: Mapped[list[str]] = mapped_column(default=list)
    workspace: Mapped[str | None] = mapped_column(Text, default=None)
    machine: Mapped[str] = mapped_column(String(200), default="")
    skills: Mapped[list[str]] = mapped_column(default=list)
    base_url: Mapped[str | None] = mapped_column(Text, default=None)
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    # Write-only: used to call an OpenAI-compatible endpoint, never returned or logged. Sealed
    # with the home's secret box (agents/records.py), like the values in `env`.
    api_key: Mapped[str | None] = mapped_column(Text, default=None)
    # NAME -> sealed value of the agent's own, or None for the hub's value of NAME.
    env: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Turn(Base):
    """One request on one agent's runtime: persisted before it runs, finished or interrupted."""

    __tablename__ = "turns"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # A voice tool call's id: with call_id, the same tool call sent twice is one turn.
    tool_call_id: Mapped[str | None] = mapped_column(String(64), default=None)
    source: Mapped[str] = mapped_column(String(32))
    # Who asked (auth.Principal.caller): a session belongs to one caller.
    # (A server default, not a Python one: the bridge's SQLite fast path sends only the
    # columns a row names.)
    caller: Mapped[str] = mapped_column(String(160), server_default="owner")
    # The process running it (runtimes/runner.py): a hub that starts leaves live ones alone.
    runner: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text, default=None)
    spoken: Mapped[str | None] = mapped_column(Text, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    # What the agent said it was doing, newest last: [{at, text}], bounded (turns/handle.py).
    progress: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, default=None)

    __table_args__ = (
        Index("ix_turns_agent_queued", "agent_id", "queued_at"),
        Index("ux_turns_tool_call", "call_id", "tool_call_id", unique=True),
        Index("ix_turns_session", "session_id"),
        Index("ix_turns_status", "status"),
    )


class Call(Base):
    """One voice call with one agent: who started it, how, and how far it got."""

    __tablename__ = "calls"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    # The token that started the call (devices see only their own calls) and a label for people.
    started_by: Mapped[str] = mapped_column(String(32))
    started_by_name: Mapped[str] = mapped_column(String(200), default="")
    speaker_only: Mapped[bool] = mapped_column(default=False)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    connecting_at: Mapped[datetime | None] = mapped_column(default=None)
    talking_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_calls_created", "created_at"),
        Index("ix_calls_started_by", "started_by", "created_at"),
        # The sweeper looks for the few calls still ringing or connecting, every second.
        Index("ix_calls_state", "state"),
    )


class CallLine(Base):
    """A line of a call's timeline: what the user said, what the agent said, tools, phases."""

    __tablename__ = "call_lines"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # user | agent | tool | phase | error
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    turn_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # Who said it, in calls with several people or agents (cloud calls); empty otherwise.
    speaker: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (Index("ix_call_lines_call", "call_id", "id"),)


class CallAgent(Base):
    """An agent dispatched into a cloud call: the first one the call was started with, then any
    added later. A worker may claim a (call, agent) pair only if it is here."""

    __tablename__ = "call_agents"
    call_id: Mapped[str] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(default=0)
    voice: Mapped[str] = mapped_column(String(32), default="")
    dispatch_id: Mapped[str] = mapped_column(String(64), default="")
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)


class CallInvite(Base):
    """A link that lets a friend join a cloud call from a browser: stored hashed, expiring,
    usable `max_uses` times."""

    __tablename__ = "call_invites"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    max_uses: Mapped[int] = mapped_column(default=1)
    uses: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_call_invites_call", "call_id"),)


class PairingCode(Base):
    """A short code the owner hands a phone to pair it: single use, short-lived, stored hashed.

    Claiming it sets `used_at` and `device_id` (the device it paired; its token's subject).
    """

    __tablename__ = "pairing_codes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    device_id: Mapped[str | None] = mapped_column(String(64), default=None)


class HiveClient(Base):
    """A HiveMind client (satellite, bus client, solver): its credentials and its rights.

    The access key is stored as its SHA-256; the password sealed with the home's secret key
    (it is needed in the clear to derive session keys). See hivecall/hivemind/clients.py.
    """

    __tablename__ = "hivemind_clients"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    password: Mapped[str] = mapped_column(Text)
    agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), default=None
    )
    is_admin: Mapped[bool] = mapped_column(default=False)
    allowed_types: Mapped[list[str]] = mapped_column(default=list)
    message_blacklist: Mapped[list[str]] = mapped_column(default=list)
    skill_blacklist: Mapped[list[str]] = mapped_column(default=list)
    intent_blacklist: Mapped[list[str]] = mapped_column(default=list)
    can_escalate: Mapped[bool] = mapped_column(default=True)
    can_propagate: Mapped[bool] = mapped_column(default=False)
    can_broadcast: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
