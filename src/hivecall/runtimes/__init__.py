"""Runtimes reach the user's real agents. One module per kind; `Runtimes` picks one per agent."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hivecall.runtimes.base import ChatMessage, Runtime, TurnInput
from hivecall.runtimes.command import CommandRuntime
from hivecall.runtimes.echo import EchoRuntime
from hivecall.runtimes.hivemind import HiveMindRuntime
from hivecall.runtimes.openai_chat import OpenAIChatRuntime

__all__ = ["KINDS", "ChatMessage", "Runtime", "Runtimes", "TurnInput"]

# The runtime kinds an agent record may name (besides the presets, which are command agents),
# each asked what it can do and what its records need.
KINDS: dict[str, type[Runtime]] = {
    "command": CommandRuntime,
    "openai_chat": OpenAIChatRuntime,
    "echo": EchoRuntime,
    "hivemind": HiveMindRuntime,
}


class Runtimes:
    """One instance of each runtime kind, shared by all agents of that kind."""

    def __init__(
        self, *, environ: Mapping[str, str], openai_api_key: Callable[[], str] = lambda: ""
    ) -> None:
        self._openai = OpenAIChatRuntime(default_api_key=openai_api_key)
        self._hivemind = HiveMindRuntime()
        self._by_kind: dict[str, Runtime] = {
            "command": CommandRuntime(environ=dict(environ)),
            "openai_chat": self._openai,
            "echo": EchoRuntime(),
            "hivemind": self._hivemind,
        }

    def register(self, kind: str, runtime: Runtime) -> None:
        """Add or replace a kind (tests plug in instrumented runtimes this way)."""
        self._by_kind[kind] = runtime

    def get(self, kind: str) -> Runtime:
        return self._by_kind[kind]

    async def aclose(self) -> None:
        await self._openai.aclose()
        await self._hivemind.aclose()
