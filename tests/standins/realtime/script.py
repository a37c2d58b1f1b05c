"""What the stand-in's "model" does in a call: a list of turns, each one response.

A turn either waits for the client's `response.create` (the opening, or the answer after a
function output) or, with `auto=True`, starts on its own once the previous response is done,
as if the user had spoken and server VAD had started a response (`user` is then what the user
"said": speech started/stopped, the user item and its transcription come first).

A script may instead choose each answer from the conversation (`Script.choose`): `relay_script()`
passes what the user said (heard, scripted or typed) to `ask_computer_agent` and says the tool's
output, as a voice front end for the hub's agent would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.standins.realtime.session import RealtimeSession

TOOL_NAME = "ask_computer_agent"


@dataclass(frozen=True)
class Speech:
    """An assistant audio message; its transcript streams as deltas.

    `text` may be a function of the session, e.g. to repeat the last function output.
    """

    text: str | Callable[[RealtimeSession], str]

    def render(self, session: RealtimeSession) -> str:
        return self.text(session) if callable(self.text) else self.text


@dataclass(frozen=True)
class ToolCall:
    """A function call item: by default `ask_computer_agent` with `{"message": message}`."""

    message: str
    name: str = TOOL_NAME
    call_id: str | None = None  # None: a fresh call_... id
    arguments: str | None = None  # the raw arguments string, overriding `message`


Output = Speech | ToolCall
# Picks the answer to a response.create (or to heard speech when turn_detection.create_response
# is on) from the conversation; None falls back to the scripted turns.
Chooser = Callable[["RealtimeSession", dict[str, Any]], "Turn | None"]


@dataclass(frozen=True)
class Turn:
    outputs: tuple[Output, ...] = ()
    user: str | None = None  # what the user said before this response (auto turns)
    auto: bool = False  # start without the client's response.create

    @classmethod
    def say(
        cls,
        text: str | Callable[[RealtimeSession], str],
        *,
        user: str | None = None,
        auto: bool = False,
    ) -> Turn:
        return cls(outputs=(Speech(text),), user=user, auto=auto)

    @classmethod
    def tool(cls, message: str, *, user: str | None = None, auto: bool = True) -> Turn:
        return cls(outputs=(ToolCall(message),), user=user, auto=auto)


@dataclass
class Script:
    turns: list[Turn] = field(default_factory=list)
    # The answer to a response.create the script does not expect (the next turn is automatic,
    # or there is none left).
    fallback: Turn = field(default_factory=lambda: Turn.say("Okay."))
    # Called with the session and the request's `response` ({} for an automatic response).
    choose: Chooser | None = None
    delta_gap: float = 0.01  # seconds between transcript/argument deltas
    user_delay: float = 0.2  # seconds before an automatic turn starts


OPENING = "Hi, this is the hivecall test model. What should I do?"
USER_REQUEST = "List the files in the repo."
TOOL_MESSAGE = "list the files in the repo"


def agent_says(session: RealtimeSession) -> str:
    return f"The agent says: {session.last_output or 'nothing'}"


def default_script() -> Script:
    """A typical call: the opening, the user asks, a tool call, the spoken answer."""
    return Script(
        turns=[
            Turn.say(OPENING),
            Turn.tool(TOOL_MESSAGE, user=USER_REQUEST),
            Turn.say(agent_says),
        ]
    )


def relay_script(opening: str = OPENING) -> Script:
    """A model that relays: the answer to a response.create after something the user said (heard
    audio, a scripted `Turn(user=...)`, or a user message item the client created) is an
    `ask_computer_agent` call with `{"message": <what was said>}`; the one after a function output
    says that output, word for word; one with nothing new (a greeting) says `opening`. The
    request's `instructions` are not said: livekit-agents puts the session's whole instructions
    before a greeting's.
    """

    def choose(session: RealtimeSession, request: dict[str, Any]) -> Turn:
        if (output := session.take_output()) is not None:
            return Turn.say(output)
        if (said := session.take_user_text()) is not None:
            return Turn(outputs=(ToolCall(said),))
        return Turn.say(opening)

    return Script(choose=choose)
