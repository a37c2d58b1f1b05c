"""The worker's voice tools, with the schemas every voice front door shares (voice/tool.py):
`ask_computer_agent` relays to the hub's bridge, `cancel_computer_agent` stops its running work.
"""

from __future__ import annotations

import hashlib
from typing import Any

from livekit.agents import RunContext, function_tool, llm

from hivecall.calls.cloud.wire import ID
from hivecall.cloud.hubclient import HubClient
from hivecall.cloud.running_turns import RunningTurns
from hivecall.voice.tool import (
    CANCEL_DESCRIPTION,
    CANCEL_NAME,
    CANCEL_PARAMETERS,
    DESCRIPTION,
    NAME,
    PARAMETERS,
)


def tool_call_id(call: llm.FunctionCall) -> str:
    """The hub's idempotency key for one tool call: the voice model's own call id (OpenAI
    Realtime's `call_id`), or, when it has none or one the hub would refuse, a stable digest of
    it (or of livekit's item id for the call)."""
    raw = call.call_id or call.id
    if ID.match(raw):
        return raw
    return "lk_" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def ask_tool(hub: HubClient, turns: RunningTurns) -> llm.RawFunctionTool[..., Any]:
    """`ask_computer_agent`: the agent's answer, or the hub's "started" line for long work,
    which `turns` then follows to its end."""

    @function_tool(raw_schema={"name": NAME, "description": DESCRIPTION, "parameters": PARAMETERS})
    async def ask_computer_agent(raw_arguments: dict[str, object], ctx: RunContext[None]) -> str:
        message = str(raw_arguments.get("message") or "").strip()
        if not message:
            return "The request was empty: ask the user what they would like done."
        answer = await hub.ask(message, tool_call_id=tool_call_id(ctx.function_call))
        if answer.running:
            turns.follow(answer.turn_id, message)
        return answer.text

    return ask_computer_agent


def cancel_tool(turns: RunningTurns) -> llm.RawFunctionTool[..., Any]:
    """`cancel_computer_agent`: stops this agent's running work at the hub."""

    @function_tool(
        raw_schema={
            "name": CANCEL_NAME,
            "description": CANCEL_DESCRIPTION,
            "parameters": CANCEL_PARAMETERS,
        }
    )
    async def cancel_computer_agent(raw_arguments: dict[str, object]) -> str:
        return await turns.cancel()

    return cancel_computer_agent
