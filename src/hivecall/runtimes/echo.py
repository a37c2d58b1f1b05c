"""The echo runtime: an agent with no brain yet. It says so, and repeats what it heard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from hivecall.runtimes.base import TurnInput

if TYPE_CHECKING:
    from hivecall.agents.records import AgentRecord


class EchoRuntime:
    exclusive = False
    wants_context = False
    resumes_sessions = False
    runs_command = False

    @staticmethod
    def check(fields: Mapping[str, Any], search_path: str | None) -> None:
        return None

    @staticmethod
    def problem(agent: AgentRecord, search_path: str | None) -> str | None:
        return None

    async def stream(self, turn: TurnInput) -> AsyncIterator[str]:
        yield (
            f"No runtime is configured for {turn.agent.name} yet, so I can only tell you what I "
            f"heard: {turn.message}"
        )
