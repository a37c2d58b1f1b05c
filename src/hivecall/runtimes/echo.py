"""The echo runtime: an agent with no brain yet. It says so, and repeats what it heard."""

from __future__ import annotations

from collections.abc import AsyncIterator

from hivecall.runtimes.base import TurnInput


class EchoRuntime:
    exclusive = False
    wants_context = False

    async def stream(self, turn: TurnInput) -> AsyncIterator[str]:
        yield (
            f"No runtime is configured for {turn.agent.name} yet, so I can only tell you what I "
            f"heard: {turn.message}"
        )
