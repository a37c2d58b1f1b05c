"""A turn's server-sent events (`/api/turns/{id}/events`) as TurnEvents, for HubClient.follow."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from hivecall.turns.handle import EventKind, TurnEvent

EVENT_KINDS: dict[str, EventKind] = {"progress": "progress", "delta": "delta", "done": "done"}


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, TurnEvent]]:
    """Server-sent events as (last event id, TurnEvent): `id:`, `event:` and `data:` lines up to
    a blank line. The id, as the SSE spec has it, stays until an event sets another (it is what
    a reopened stream sends back as `Last-Event-ID`). Comments (`: keepalive`), other fields,
    unknown kinds and data that is not a JSON object are skipped."""
    last_id, kind, data = "", "", []
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
            elif field_name == "id" and "\0" not in value:
                last_id = value
            continue
        known = EVENT_KINDS.get(kind)
        if known is not None and data:
            try:
                parsed = json.loads("\n".join(data))
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                yield last_id, TurnEvent(known, parsed)
        kind, data = "", []
