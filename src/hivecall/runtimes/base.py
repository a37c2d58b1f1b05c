"""The one small protocol every runtime speaks: a turn in, a stream of text out; and what each
runtime kind declares of itself, so callers ask it instead of testing its name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

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
    # The agent keeps a session of its own between turns (a CLI resumes it by id), so each turn
    # says whether its session ran before (TurnInput.resumed).
    resumes_sessions: bool
    # The agent is a program the hub starts for each turn: its record's command.
    runs_command: bool

    # The two checks below are asked of the kind (the class), by agents/records.py, which has
    # no runtime instances; `search_path` is the PATH agents' programs are looked up on.

    @staticmethod
    def check(fields: Mapping[str, Any], search_path: str | None) -> None:
        """Raise BadRequest when an agent record with these fields could never run."""
        ...

    @staticmethod
    def problem(agent: AgentRecord, search_path: str | None) -> str | None:
        """Why the agent cannot take a turn right now (its program is gone…), or None. Asked
        before every turn and for every status shown, so it stays quick: no network."""
        ...

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
