"""What a front door asks of the bridge: one turn on one agent."""

from __future__ import annotations

from dataclasses import dataclass

from hivecall.runtimes.base import ChatMessage


@dataclass(frozen=True)
class TurnRequest:
    agent: str  # id or name
    message: str
    source: str
    session_id: str | None = None
    call_id: str | None = None
    # Who asks (auth.Principal.caller). A session is one caller's: another caller naming the
    # same session id ("default") gets a session of its own, never this one's CLI session.
    caller: str = "owner"
    # A voice tool call's own id (with call_id, an idempotency key): the same tool call sent
    # twice is one turn.
    tool_call_id: str | None = None
    # Earlier messages of the conversation, when the caller keeps them (chat API). When None the
    # bridge replays the session's earlier turns to runtimes that want history.
    history: tuple[ChatMessage, ...] | None = None
