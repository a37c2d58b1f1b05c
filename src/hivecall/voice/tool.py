"""`ask_computer_agent`: the one tool every voice front door gives its voice model."""

from __future__ import annotations

from typing import Any

NAME = "ask_computer_agent"

DESCRIPTION = (
    "Hand a request to the user's computer agent, which can read and change files, run "
    "commands, search the repository and remember the work. Use it for every real task or "
    "question about the user's machine, code or work; pass the request in the user's own "
    "words plus anything from the conversation it needs. It answers in speakable text."
)

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {
            "type": "string",
            "description": "The request for the agent, complete enough to act on alone.",
        }
    },
    "required": ["message"],
    "additionalProperties": False,
}


def realtime_tool() -> dict[str, Any]:
    """The tool in OpenAI Realtime's function shape (session.tools)."""
    return {"type": "function", "name": NAME, "description": DESCRIPTION, "parameters": PARAMETERS}
