"""What a call's page or cloud worker reports at `POST /api/calls/{id}/events`: one wire contract.

The hub's route validates each batch with `EventsIn`; `hivecall worker` builds its reports with
`phase_event` and `line_event`, which cut what it heard to these limits (a person may talk for
longer than a line may be), so the two processes cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hivecall.calls.records import MAX_LINE_CHARS

CODE = r"^[a-z0-9_.:-]{1,64}$"
MAX_MESSAGE_CHARS = 500  # an error's message
MAX_SPEAKER_CHARS = 200
MAX_EVENTS = 50  # per request

Phase = Literal["connecting", "talking", "ended", "failed"]
LineKind = Literal["user", "agent"]


class ErrorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=CODE)
    message: str = Field(default="", max_length=MAX_MESSAGE_CHARS)


class PhaseEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["phase"]
    phase: Phase
    error: ErrorIn | None = None


class LineEvent(BaseModel):
    """A finished transcript line: what the user said, or one whole spoken response."""

    model_config = ConfigDict(extra="forbid")
    type: LineKind
    text: str = Field(min_length=1, max_length=MAX_LINE_CHARS)
    # Who said it, when several people or agents share the call (cloud calls).
    speaker: str = Field(default="", max_length=MAX_SPEAKER_CHARS)


class SpeakerOnlyEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["speaker_only"]


class ErrorEvent(ErrorIn):
    type: Literal["error"]


class NetworkEvent(BaseModel):
    """The page's connection dropped or came back: a line in the timeline, no phase change (a
    drop that never recovers is reported as phase `failed`, error `media_lost`)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["network"]
    state: Literal["lost", "recovered"]


Event = Annotated[
    PhaseEvent | LineEvent | SpeakerOnlyEvent | ErrorEvent | NetworkEvent,
    Field(discriminator="type"),
]


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


# What a cloud call's worker reports (the page sends the other kinds).
CallEvent = PhaseEvent | LineEvent


def phase_event(phase: Phase, error_code: str = "", error_message: str = "") -> PhaseEvent:
    """A phase to report; with `error_code`, why (its message cut to fit)."""
    if not error_code:
        return PhaseEvent(type="phase", phase=phase)
    error = ErrorIn(code=error_code, message=error_message[:MAX_MESSAGE_CHARS])
    return PhaseEvent(type="phase", phase=phase, error=error)


def line_event(kind: LineKind, text: str, speaker: str = "") -> LineEvent | None:
    """A transcript line to report, cut to fit (an ellipsis says so); None when it has no words."""
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - 1] + "…"
    return LineEvent(type=kind, text=text, speaker=speaker[:MAX_SPEAKER_CHARS])


def to_wire(event: CallEvent) -> dict[str, object]:
    """An event as JSON, leaving out what the hub assumes anyway (no error, no speaker)."""
    return event.model_dump(mode="json", exclude_defaults=True)
