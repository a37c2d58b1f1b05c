"""What the hub and `hivecall worker` tell each other, besides a call's events (calls/events.py).

The hub dispatches the worker into the call's room (`room_name`) with `JobMeta` as the dispatch
metadata (which call, which agent; never a secret). The worker reads it back, joins the room as
that agent (marked with the KIND and AGENT_ID attributes), and trades a LiveKit token signed as
WORKER_IDENTITY for the job's `ClaimOut` at `POST /api/cloud/claim` (`ClaimIn`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Call, agent, turn and tool-call ids as they travel between the two.
ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# The identity `hivecall worker` signs its claims with.
WORKER_IDENTITY = "hivecall-worker"
# Participant attributes: a person or an agent, and which agent.
KIND = "hivecall.kind"
AGENT_ID = "hivecall.agent_id"
METADATA_VERSION = 1
MAX_AGENT_NAME = 64


def room_name(call_id: str) -> str:
    return f"hivecall-{call_id}"


@dataclass(frozen=True)
class JobMeta:
    """A dispatch's metadata: the job is this agent in this call."""

    call_id: str
    agent_id: str
    agent_name: str

    def encode(self) -> str:
        return json.dumps(
            {
                "hivecall": METADATA_VERSION,
                "call_id": self.call_id,
                "agent_id": self.agent_id,
                "agent_name": self.agent_name,
            }
        )

    @classmethod
    def parse(cls, raw: str) -> JobMeta | None:
        """hivecall's dispatch metadata, or None for any other job."""
        try:
            data = json.loads(raw or "null")
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("hivecall") != METADATA_VERSION:
            return None
        call_id, agent_id, name = data.get("call_id"), data.get("agent_id"), data.get("agent_name")
        if not (isinstance(call_id, str) and ID.match(call_id)):
            return None
        if not (isinstance(agent_id, str) and ID.match(agent_id)):
            return None
        if not isinstance(name, str) or not name.strip():
            name = agent_id
        return cls(call_id=call_id, agent_id=agent_id, agent_name=name.strip()[:MAX_AGENT_NAME])


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str = Field(min_length=1, max_length=32)
    agent_id: str = Field(min_length=1, max_length=32)
    job_id: str = Field(default="", max_length=64)


# The claim's answer. Unknown fields are ignored and most have defaults, so a worker keeps
# working with a hub one version apart.


class ClaimOutCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    room: str = ""


class ClaimOutAgent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    name: str
    voice: str = ""
    instructions: str = ""
    greeting: str = ""


class ClaimOut(BaseModel):
    """What a worker gets for one job: its token for this call, and who it is there."""

    model_config = ConfigDict(extra="ignore")
    token: str = Field(min_length=1, repr=False)
    call: ClaimOutCall
    agent: ClaimOutAgent
    agents: list[str] = Field(default_factory=list)  # the call's agents, in dispatch order

    def public(self) -> dict[str, Any]:
        return self.model_dump()
