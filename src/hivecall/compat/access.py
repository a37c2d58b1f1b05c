"""Who may use which agent through the compat API, and starting their turns.

A caller is one of:

- an **API key** (`hivecall keys create`): kind `api`, scope `compat`, limited to one agent when
  its `subject` holds that agent's id;
- the **owner token** (every agent);
- on the compat listener only, and only when the owner opted in (`compat_open_agents`), an
  **anonymous** LAN client, which reaches the named agents and nothing else.

Keys travel as `Authorization: Bearer <key>`, never in cookies or query strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from hivecall.agents.records import AgentRecord
from hivecall.chat_wire import is_session_id
from hivecall.compat.shapes import UnknownModel
from hivecall.errors import BadRequest, Forbidden, NotFound, Unauthorized
from hivecall.http_api import client_address
from hivecall.hub import Hub
from hivecall.runtimes import ChatMessage
from hivecall.turns.handle import TurnHandle
from hivecall.turns.request import TurnRequest

API_KIND = "api"
SCOPE = "compat"
# Clients that keep a conversation may name it; turns with one session id are one session.
SESSION_HEADERS = ("x-hivecall-session-id", "x-openwebui-chat-id")
# Ollama clients name models `name:tag`; an agent is its name, so `:latest` is the agent itself.
LATEST = ":latest"


@dataclass(frozen=True)
class Access:
    """What one request may reach."""

    agent_id: str | None = None  # a key limited to this agent
    open_names: frozenset[str] | None = None  # anonymous: only these agent names
    caller: str = "open"  # whose sessions its turns are (auth.Principal.caller)

    def allows(self, agent: AgentRecord) -> bool:
        if self.open_names is not None:
            return agent.name in self.open_names
        return self.agent_id is None or agent.id == self.agent_id


class Gate:
    """The access rules of one listener: the main port (keys only) or the compat listener."""

    def __init__(self, *, open_agents: frozenset[str] = frozenset()) -> None:
        self.open_agents = open_agents

    async def access(self, request: Request, hub: Hub) -> Access:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            # Wrong keys are throttled per address, except where unknown keys are let in anyway.
            principal = (
                await hub.tokens.verify(value)
                if self.open_agents
                else await hub.tokens.authenticate(value, source=client_address(request))
            )
            if principal is not None:
                if not principal.can(SCOPE):
                    raise Forbidden(f"this token may not use the compat API (needs {SCOPE})")
                limited = principal.subject if principal.kind == API_KIND else None
                return Access(agent_id=limited, caller=principal.caller)
            if not self.open_agents:
                raise Unauthorized("the API key is not valid (wrong, expired or revoked)")
            # A client that must send some key (the OpenAI SDK always does) but has none of
            # ours is the anonymous LAN client the owner opted in for: open agents only.
        if self.open_agents:
            return Access(open_names=self.open_agents)
        raise Unauthorized(
            "send an API key as Authorization: Bearer <key> (make one: hivecall keys create)"
        )

    async def agent(self, hub: Hub, access: Access, model: str) -> AgentRecord:
        """The agent a request's `model` names, if this caller may use it."""
        name = model.removesuffix(LATEST)
        try:
            agent = await hub.agents.get(name)
        except NotFound:
            agent = None
        if agent is None or not access.allows(agent):
            raise UnknownModel(model)
        return agent

    async def visible(self, hub: Hub, access: Access) -> list[AgentRecord]:
        """Every agent this caller may use, oldest first."""
        return [a for a in await hub.agents.list() if access.allows(a)]


def session_of(request: Request) -> str | None:
    """The conversation a client names in a header, if any (ours wins over Open WebUI's)."""
    for name in SESSION_HEADERS:
        value = request.headers.get(name)
        if value:
            if is_session_id(value):
                return value
            if name == SESSION_HEADERS[0]:
                raise BadRequest(
                    f"{name} must be 1-64 letters, digits or . _ : -", code="invalid_request"
                )
    return None


async def start_turn(
    hub: Hub,
    request: Request,
    agent: AgentRecord,
    message: str,
    *,
    source: str,
    access: Access,
    history: tuple[ChatMessage, ...] | None = None,
) -> TurnHandle:
    """One bridge turn on `agent`, persisted and recorded like any other."""
    return await hub.bridge.start(
        TurnRequest(
            agent=agent.id,
            message=message,
            source=source,
            session_id=session_of(request),
            caller=access.caller,
            history=history,
        )
    )
