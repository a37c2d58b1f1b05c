"""What a caller says to the call itself rather than to the agent: "stop", "how is it going?".

Only a whole utterance counts, once fillers ("okay", "please", the agent's name) are taken off
its ends: "stop the server and restart it" stays a request for the agent, "okay coder, stop
please" is a cancel. The lists are short on purpose: a phrase missed goes to the agent as a
request (which it can answer), a request taken for a command would be lost.
"""

from __future__ import annotations

import re
from typing import Literal

Command = Literal["cancel", "status"]

CANCEL = frozenset(
    {
        "stop",
        "stop it",
        "stop that",
        "stop this",
        "stop working",
        "stop everything",
        "cancel",
        "cancel it",
        "cancel that",
        "cancel this",
        "cancel the request",
        "cancel everything",
        "never mind",
        "nevermind",
        "forget it",
        "forget that",
        "forget about it",
        "abort",
        "abort that",
    }
)
STATUS = frozenset(
    {
        "how is it going",
        "how's it going",
        "how is it coming along",
        "how's it coming along",
        "how are you getting on",
        "how far are you",
        "how much longer",
        "any progress",
        "any news",
        "status",
        "status update",
        "what's the status",
        "what is the status",
        "what are you doing",
        "what's happening",
        "what is happening",
        "are you done",
        "are you done yet",
        "is it done",
        "is it done yet",
    }
)
_LEAD = (
    *("okay", "ok", "oh", "um", "uh", "hmm", "hey", "no", "wait", "so", "well", "just"),
    *("please", "actually", "alright", "all right", "right"),
)
_TAIL = ("please", "now", "right now", "for now", "thanks", "thank you", "then")
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def command(text: str, agent_name: str = "") -> Command | None:
    """The command `text` is, if it is one (Whisper's punctuation and case do not matter)."""
    said = _normalize(text, agent_name)
    if said in CANCEL:
        return "cancel"
    if said in STATUS:
        return "status"
    return None


def _normalize(text: str, agent_name: str) -> str:
    words = _NOT_WORD.sub(" ", text.lower().replace("\u2019", "'")).split()
    # "stop, stop" is one stop.
    words = [w for i, w in enumerate(words) if i == 0 or w != words[i - 1]]
    said = " ".join(words)
    name = " ".join(_NOT_WORD.sub(" ", agent_name.lower()).split())
    lead = (*_LEAD, name) if name else _LEAD
    changed = True
    while changed:
        changed = False
        for word in lead:
            if said.startswith(word + " "):
                said, changed = said[len(word) + 1 :], True
        for word in _TAIL:
            if said.endswith(" " + word):
                said, changed = said[: -len(word) - 1], True
    return said
