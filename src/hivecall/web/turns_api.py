"""Following and stopping a turn: one API for every face (call pages, the worker, the CLI).

`GET /api/turns/{id}/events` streams server-sent events — `progress` {at, text}, `delta` {text},
`done` {turn_id, status, text, error_code, duration_ms} — starting with what already happened,
so a subscriber that comes late misses nothing; a stream that fails ends with `error` (the one
error shape) instead. Each event's `id` is where its follower stands (turns/resume.py): sent
back as `Last-Event-ID`, the reopened stream starts after it, whether the turn still runs or
is replayed from the store. `POST /api/turns/{id}/cancel` stops a running turn (its agent's whole
process group) and answers at once; the turn ends `cancelled`.

The owner may follow any turn; a phone or a cloud call's worker only the turns of its own calls
(a turn outside them is reported missing, so ids do not leak).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hivecall.auth import WORKER_SCOPE
from hivecall.errors import Conflict, HivecallError, NotFound
from hivecall.http_api import authed, event_stream, hub_of, ok
from hivecall.hub import Hub
from hivecall.store.models import Turn
from hivecall.turns.handle import FINISHED, TurnEvent, TurnHandle
from hivecall.turns.resume import Cursor, resumed

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
# A turn another hivecall process runs (the CLI's `ask`) is followed through the store.
POLL_S = 0.5


async def visible_turn(request: Request) -> Turn:
    """The turn the path names, if this caller may see it."""
    who = await authed(request, "admin", "calls", WORKER_SCOPE)
    hub = hub_of(request)
    turn = await hub.bridge.get_turn(request.path_params["turn_id"])
    if turn is None:
        raise NotFound("no such turn", code="turn_not_found")
    if not who.can("admin"):
        if turn.call_id is None:
            raise NotFound("no such turn", code="turn_not_found")
        try:
            await hub.calls.get(turn.call_id, who=who)
        except NotFound as e:
            raise NotFound("no such turn", code="turn_not_found") from e
    return turn


def frame(event: TurnEvent, cursor: Cursor) -> bytes:
    return sse_frame(event.kind, event.data, event_id=str(cursor))


def sse_frame(kind: str, payload: dict[str, Any], *, event_id: str = "") -> bytes:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {data}\n\n".encode()


async def _from_store(hub: Hub, turn: Turn) -> AsyncIterator[TurnEvent]:
    """A turn run by another process: its progress as the store gets it, then its end."""
    seen: set[str] = set()
    row: Turn | None = turn
    while row is not None:
        for entry in row.progress or []:
            key = entry.get("at", "") + entry.get("text", "")
            if key not in seen:
                seen.add(key)
                yield TurnEvent("progress", dict(entry))
        if row.status in FINISHED:
            agent = await hub.agents.get(row.agent_id)
            async for event in TurnHandle.of_stored(row, agent).events():
                if event.kind != "progress":
                    yield event
            return
        await asyncio.sleep(POLL_S)
        row = await hub.bridge.get_turn(turn.id)
    # Gone before it ended (its agent was removed): an error, not an end that looks complete.
    raise NotFound("the turn is gone", code="turn_not_found")


async def events_of(hub: Hub, turn: Turn) -> AsyncIterator[TurnEvent]:
    live = hub.bridge.live(turn.id)
    if live is None and turn.status in FINISHED:
        live = TurnHandle.of_stored(turn, await hub.agents.get(turn.agent_id))
    source = live.events() if live is not None else _from_store(hub, turn)
    async for event in source:
        yield event


def failure(e: Exception) -> bytes:
    """An `error` event in the one error shape (errors.py)."""
    if not isinstance(e, HivecallError):
        log.error("a turn's events failed", exc_info=e)
        e = HivecallError("the hub hit an unexpected error")
    return sse_frame("error", e.as_dict())


async def _sse(events: AsyncIterator[tuple[Cursor, TurnEvent]]) -> AsyncIterator[bytes]:
    """Frames, with a comment every KEEPALIVE_S so idle connections stay open."""
    pending: asyncio.Future[tuple[Cursor, TurnEvent]] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_S)
            if not done:
                yield b": keepalive\n\n"
                continue
            try:
                cursor, event = pending.result()
                data = frame(event, cursor)
            except StopAsyncIteration:
                return
            except Exception as e:
                # The headers are sent: say what went wrong and end, so the client neither
                # gets half a frame nor a stream that ends as if nothing were missing.
                yield failure(e)
                return
            pending = None
            yield data
            if event.kind == "done":
                return
    finally:
        if pending is not None:
            pending.cancel()


async def turn_events(request: Request) -> Response:
    turn = await visible_turn(request)
    cursor = Cursor.parse(request.headers.get("last-event-id"))
    return event_stream(_sse(resumed(events_of(hub_of(request), turn), cursor)))


async def turn_cancel(request: Request) -> Response:
    turn = await visible_turn(request)
    hub = hub_of(request)
    if hub.bridge.cancel(turn.id):
        return ok({"ok": True, "turn_id": turn.id, "status": "cancelling"})
    fresh = await hub.bridge.get_turn(turn.id)
    if fresh is None or fresh.status in FINISHED:
        status = fresh.status if fresh else "gone"
        raise Conflict(f"the turn has already ended ({status})", code="turn_finished")
    raise Conflict(
        "the turn runs in another hivecall process (stop it there)", code="turn_not_here"
    )


routes = [
    Route("/api/turns/{turn_id}/events", turn_events, methods=["GET"]),
    Route("/api/turns/{turn_id}/cancel", turn_cancel, methods=["POST"]),
]
