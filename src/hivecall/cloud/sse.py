"""A turn's server-sent events (`/api/turns/{id}/events`) as TurnEvents, for HubClient.follow."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from hivecall.turns.handle import EventKind, TurnEvent

EVENT_KINDS: dict[str, EventKind] = {"progress": "progress", "delta": "delta", "done": "done"}


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[TurnEvent]:
    """Server-sent events as TurnEvents: `event:` and `data:` lines up to a blank line.
    Comments (`: keepalive`), other fields, unknown kinds and data that is not a JSON object
    are skipped."""
    kind, data = "", []
    async for line in lines:
        if line.startswith(":"):
            continue
        if line:
            field_name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field_name == "event":
                kind = value
            elif field_name == "data":
                data.append(value)
            continue
        known = EVENT_KINDS.get(kind)
        if known is not None and data:
            try:
                parsed = json.loads("\n".join(data))
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                yield TurnEvent(known, parsed)
        kind, data = "", []
