"""The one small protocol every runtime speaks: a turn in, a stream of text out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from hivecall.errors import RuntimeFailure

if TYPE_CHECKING:
    from hivecall.agents.context import AgentContext
    from hivecall.agents.records import AgentRecord


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Progress:
    """What the agent is doing now, short and speakable ("running the tests")."""

    text: str


# What a runtime yields: a piece of the answer, or a progress line.
Output = str | Progress


@dataclass(frozen=True)
class TurnInput:
    turn_id: str
    agent: AgentRecord
    message: str
    session_id: str
    # True when this session already ran a turn on this agent (CLIs can resume their session).
    resumed: bool
    timeout: float
    history: tuple[ChatMessage, ...] = ()
    context: AgentContext | None = field(default=None)
    # Who asked (auth.Principal.caller): sessions are that caller's, never shared with another.
    caller: str = "owner"


class Runtime(Protocol):
    # Only one turn at a time per agent (a CLI agent editing one workspace).
    exclusive: bool
    # The bridge gathers the agent's context (repo, memory, recent turns) before the turn.
    wants_context: bool

    def stream(self, turn: TurnInput) -> AsyncIterator[Output]:
        """Yield the answer as text pieces, and Progress while it works; raise RuntimeFailure
        when the runtime fails."""
        ...


def timeout_failure(agent: str, seconds: float) -> RuntimeFailure:
    return RuntimeFailure(
        f"agent {agent!r} did not answer within {seconds:g} s",
        code="runtime_timeout",
        spoken=f"Sorry, {agent} took longer than {seconds:g} seconds, so I stopped it.",
    )
