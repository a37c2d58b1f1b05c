"""The voice tools: `ask_computer_agent`, which every voice front door gives its voice model, and
`cancel_computer_agent`, which stops the agent's running work when the person says stop."""

from __future__ import annotations

from typing import Any

NAME = "ask_computer_agent"

DESCRIPTION = (
    "Hand a request to the user's computer agent, which can read and change files, run "
    "commands, search the repository and remember the work. Use it for every real task or "
    "question about the user's machine, code or work; pass the request in the user's own "
    "words plus anything from the conversation it needs. It answers in speakable text. "
    "Long work answers at once that the agent is still working; its answer follows when ready."
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

CANCEL_NAME = "cancel_computer_agent"

CANCEL_DESCRIPTION = (
    "Stop the computer agent's running work on this call. Use it only when the user asks to "
    'stop or cancel what the agent is doing ("stop", "cancel that", "never mind").'
)

CANCEL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {},
    "additionalProperties": False,
}


def _function(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "name": name, "description": description, "parameters": parameters}


def realtime_tool() -> dict[str, Any]:
    """`ask_computer_agent` in OpenAI Realtime's function shape (session.tools)."""
    return _function(NAME, DESCRIPTION, PARAMETERS)


def realtime_cancel_tool() -> dict[str, Any]:
    """`cancel_computer_agent` in OpenAI Realtime's function shape."""
    return _function(CANCEL_NAME, CANCEL_DESCRIPTION, CANCEL_PARAMETERS)


def realtime_tools() -> list[dict[str, Any]]:
    """Every tool a Realtime voice session gets."""
    return [realtime_tool(), realtime_cancel_tool()]
