"""Where a follower of a turn's events left off, so a reopened stream sends only what is new.

A turn's events are replayed from the first on every connection, but not always in the same
shape: live, progress lines and answer deltas interleave as the runtime made them; once the
turn has ended, the store replays all its progress, then the whole (stripped) answer as one
delta (TurnHandle.of_stored). So a position in the stream means nothing across a reconnect.
A Cursor names what the follower has in terms both shapes share: the newest progress line's
time (lines are at least PROGRESS_GAP apart, so their millisecond times only grow) and how
many characters of the answer it has, counted from the first that is not whitespace (the
store keeps the answer stripped). It is sent as each event's SSE `id`; a client reopening the
stream sends it back as `Last-Event-ID`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from hivecall.errors import BadRequest
from hivecall.turns.handle import TurnEvent

_FORM = re.compile(r"(\d{1,9})/([0-9T:.+\-Z]{0,40})")


@dataclass(frozen=True)
class Cursor:
    answer_chars: int = 0  # of the answer, from its first character that is not whitespace
    progress_at: str = ""  # the newest progress line's `at` (ISO 8601, UTC, milliseconds)

    def __str__(self) -> str:
        return f"{self.answer_chars}/{self.progress_at}"

    @classmethod
    def parse(cls, raw: str | None) -> Cursor:
        """The cursor a client sent back ("" or None: from the start); anything this hub did
        not send is refused, so a mistaken header cannot silently drop events."""
        if not raw:
            return cls()
        form = _FORM.fullmatch(raw.strip())
        if form is None:
            raise BadRequest(
                "Last-Event-ID is not an event id this hub sent", code="invalid_last_event_id"
            )
        return cls(int(form[1]), form[2])


async def resumed(
    events: AsyncIterator[TurnEvent], cursor: Cursor
) -> AsyncIterator[tuple[Cursor, TurnEvent]]:
    """The events after `cursor`, each with the cursor a follower has once it got it: progress
    at or before the cursor's time is skipped, deltas are cut past the characters it has;
    `done` always comes through."""
    newest, chars, started = cursor.progress_at, 0, False
    async for event in events:
        if event.kind == "progress":
            at = str(event.data.get("at", ""))
            if at and at <= cursor.progress_at:
                continue
            newest = max(newest, at)
            yield Cursor(max(chars, cursor.answer_chars), newest), event
        elif event.kind == "delta":
            text = str(event.data.get("text", ""))
            counted = text if started else text.lstrip()
            started = started or bool(counted)
            before, chars = chars, chars + len(counted)
            if cursor.answer_chars and chars <= cursor.answer_chars:
                continue  # the follower has all of it
            skip = cursor.answer_chars - before
            piece = counted[skip:] if skip > 0 else text
            yield Cursor(chars, newest), TurnEvent("delta", {**event.data, "text": piece})
        else:
            yield Cursor(max(chars, cursor.answer_chars), newest), event
