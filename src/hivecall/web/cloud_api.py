"""Cloud calls API: the people and agents in a call's room, invite links, guests joining, and
the worker's claim. Starting and ending a cloud call go through calls_api like every mode."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from hivecall.calls.cloud.invites import InviteIn
from hivecall.calls.cloud.rooms import guest_identity, human_identity, human_name
from hivecall.calls.cloud.wire import ClaimIn
from hivecall.errors import Unauthorized
from hivecall.http_api import authed, bearer, hub_of, ok, read_json
from hivecall.listening import phone_url
from hivecall.pairing import device_name
from hivecall.store.models import Call
from hivecall.web.pages import STATIC


class AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: str = Field(min_length=1, max_length=64)


class JoinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=8, max_length=64)
    name: str = Field(default="", max_length=64)


async def _cloud_call(request: Request) -> Call:
    """The caller's own cloud call (someone else's is reported missing)."""
    who = await authed(request, "calls")
    call = await hub_of(request).calls.get(request.path_params["call_id"], who=who)
    hub_of(request).cloud.check_cloud(call)
    return call


async def rejoin(request: Request) -> Response:
    """A fresh join token for the caller's own cloud call: after a reload, a dropped connection
    or an expired token. Same identity, so LiveKit replaces the old connection."""
    who = await authed(request, "calls")
    hub = hub_of(request)
    call = await hub.calls.get(request.path_params["call_id"], who=who)
    token = await hub.cloud.join(
        hub.settings, call, identity=human_identity(who), name=human_name(who)
    )
    return ok({"livekit": token.public()})


async def participants(request: Request) -> Response:
    call = await _cloud_call(request)
    hub = hub_of(request)
    people = await hub.cloud.participants(hub.settings, call)
    return ok({"participants": [p.public() for p in people]})


async def remove_participant(request: Request) -> Response:
    call = await _cloud_call(request)
    hub = hub_of(request)
    identity = request.path_params["identity"]
    await hub.cloud.remove(hub.settings, call, identity)
    return ok({"removed": identity})


async def add_agent(request: Request) -> Response:
    call = await _cloud_call(request)
    hub = hub_of(request)
    body = await read_json(request, AgentIn)
    agent = await hub.agents.get(body.agent_id)
    added = await hub.cloud.add_agent(hub.settings, call, agent)
    return ok(
        {
            "agent": {"id": agent.id, "name": agent.name, "voice": added.voice},
            "dispatch_id": added.dispatch_id,
        },
        201,
    )


async def create_invite(request: Request) -> Response:
    call = await _cloud_call(request)
    hub = hub_of(request)
    hub.cloud.check_open(call)
    body = await read_json(request, InviteIn)
    invite = await hub.invites.create(call.id, body, public_url=phone_url(hub.settings))
    return ok({"invite": invite.public()}, 201)


async def list_invites(request: Request) -> Response:
    call = await _cloud_call(request)
    invites = await hub_of(request).invites.of_call(call.id)
    return ok({"invites": [i.public() for i in invites]})


async def revoke_invite(request: Request) -> Response:
    call = await _cloud_call(request)
    invite = await hub_of(request).invites.revoke(call.id, request.path_params["invite_id"])
    return ok({"invite": invite.public()})


async def join(request: Request) -> Response:
    """A guest trades an invite code and a name for a join token. No login: the code is it."""
    hub = hub_of(request)
    body = await read_json(request, JoinIn)
    invite = await hub.invites.find(body.code)
    call = await hub.calls.get(invite.call_id)
    hub.cloud.check_open(call)
    await hub.invites.use(invite)
    name = device_name(body.name) or "Guest"
    token = await hub.cloud.join(hub.settings, call, identity=guest_identity(), name=name)
    agent = await hub.agents.get(call.agent_id)
    return ok({"call": {"id": call.id, "agent": {"name": agent.name}}, "livekit": token.public()})


async def join_page(request: Request) -> Response:
    """The guest page. The code is in its address: keep it out of caches and referrers."""
    return HTMLResponse(
        (STATIC / "join.html").read_text(),
        headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
    )


async def claim(request: Request) -> Response:
    """`hivecall worker` took a job: it gets a token for that call and who it is there."""
    jwt = bearer(request)
    if not jwt:
        raise Unauthorized("send the worker's LiveKit token as Authorization: Bearer …")
    hub = hub_of(request)
    body = await read_json(request, ClaimIn)
    got = await hub.cloud.claim(
        hub.settings, jwt=jwt, call_id=body.call_id, agent_id=body.agent_id, job_id=body.job_id
    )
    return ok(got.public())


routes = [
    Route("/api/calls/{call_id}/token", rejoin, methods=["POST"]),
    Route("/api/calls/{call_id}/participants", participants, methods=["GET"]),
    Route("/api/calls/{call_id}/participants/{identity}", remove_participant, methods=["DELETE"]),
    Route("/api/calls/{call_id}/agents", add_agent, methods=["POST"]),
    Route("/api/calls/{call_id}/invites", create_invite, methods=["POST"]),
    Route("/api/calls/{call_id}/invites", list_invites, methods=["GET"]),
    Route("/api/calls/{call_id}/invites/{invite_id}", revoke_invite, methods=["DELETE"]),
    Route("/api/join", join, methods=["POST"]),
    Route("/join/{code}", join_page, methods=["GET"]),
    Route("/api/cloud/claim", claim, methods=["POST"]),
]
