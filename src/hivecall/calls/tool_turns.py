"""A voice tool turn inside a call: the call it belongs to, and its line in the transcript.

The voice model of a call (the page's, or a cloud call's worker) relays what the user asked as
a tool call; each becomes a turn of that call, recorded as a `tool` line next to what was said.
"""

from __future__ import annotations

from typing import Protocol

from hivecall.auth import Principal
from hivecall.calls.records import CallLineIn, Calls
from hivecall.calls.state import TERMINAL
from hivecall.errors import BadRequest, Conflict
from hivecall.store.models import Call


class Rooms(Protocol):
    """Who else was dispatched into a call (cloud calls hold several agents)."""

    async def in_call(self, call: Call, agent_id: str) -> bool: ...


async def open_call(
    calls: Calls, rooms: Rooms, who: Principal, call_id: str, agent_id: str
) -> Call:
    """The call a tool turn belongs to: the caller's own, with this agent, not finished."""
    call = await calls.get(call_id, who=who)
    if call.agent_id != agent_id and not await rooms.in_call(call, agent_id):
        raise BadRequest("this call is with another agent", code="call_agent_mismatch")
    if call.state in TERMINAL:
        raise Conflict(f"the call has already {call.state}", code="call_finished")
    return call


async def record_tool_line(calls: Calls, call: Call, message: str, turn_id: str) -> None:
    """The tool turn's request, in the call's transcript, linked to its turn."""
    await calls.add_lines(call, [CallLineIn(kind="tool", text=message.strip(), turn_id=turn_id)])
