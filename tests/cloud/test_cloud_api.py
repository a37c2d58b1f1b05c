"""Cloud calls on the hub: entitlement, rooms, dispatch, join tokens, people, invites, agents,
the worker's claim and what its token may do. LiveKit is the stand-in, driven by the hub's real
`livekit-api` client."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from livekit import api
from livekit.protocol import agent_dispatch, models
from sqlalchemy import update
from starlette.applications import Starlette

from hivecall.app import create_app
from hivecall.errors import HivecallError
from hivecall.hub import Hub
from hivecall.settings import Settings
from hivecall.store.models import CallInvite
from tests.conftest import OWNER, owner_client
from tests.keys import FAKE_OPENAI_KEY, LIVEKIT_API_KEY, LIVEKIT_API_SECRET
from tests.livekit_standin.server import LiveKitStandin

SECRETS = (LIVEKIT_API_SECRET, FAKE_OPENAI_KEY, OWNER)


def hub_of(app: Starlette) -> Hub:
    hub: Hub = app.state.hub
    return hub


def no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def start(client: httpx.AsyncClient, agent: str = "echo") -> dict[str, Any]:
    r = await client.post("/api/calls", json={"agent_id": agent, "mode": "cloud"})
    assert r.status_code == 201, r.text
    no_secrets(r.text)
    call: dict[str, Any] = r.json()["call"]
    return call


def dispatches_in(livekit: LiveKitStandin, room: str) -> list[agent_dispatch.AgentDispatch]:
    return [d for d in livekit.dispatches if d.room == room]


def claims_of(token: str) -> api.Claims:
    return api.TokenVerifier(LIVEKIT_API_KEY, LIVEKIT_API_SECRET).verify(token)


def worker_jwt(secret: str = LIVEKIT_API_SECRET, identity: str = "hivecall-worker") -> str:
    return (
        api.AccessToken(LIVEKIT_API_KEY, secret)
        .with_identity(identity)
        .with_grants(api.VideoGrants(agent=True))
        .with_ttl(timedelta(seconds=60))
        .to_jwt()
    )


async def claim(anon: httpx.AsyncClient, call: dict[str, Any], agent_id: str) -> httpx.Response:
    """Claim as the worker; `agent_id` may be "echo" for the call's own agent."""
    if agent_id == "echo":
        agent_id = call["agent"]["id"]
    return await anon.post(
        "/api/cloud/claim",
        json={"call_id": call["id"], "agent_id": agent_id, "job_id": "AJ_test"},
        headers={"authorization": f"Bearer {worker_jwt()}"},
    )


async def test_a_cloud_call_creates_a_room_dispatches_the_agent_and_mints_a_token(
    client: httpx.AsyncClient, livekit: LiveKitStandin
) -> None:
    call = await start(client)
    assert (call["mode"], call["state"]) == ("cloud", "ringing")
    lk = call["livekit"]
    room = f"hivecall-{call['id']}"
    assert lk["room"] == room and lk["url"] == livekit.url.replace("http://", "ws://")

    # The room, as LiveKit was asked for it.
    made = livekit.rooms[room]
    assert made.empty_timeout == 300 and made.max_participants == 8
    assert json.loads(made.metadata) == {"call_id": call["id"]}

    # One dispatch of the hivecall worker, naming the call and the agent and nothing else.
    (dispatch,) = dispatches_in(livekit, room)
    assert dispatch.agent_name == "hivecall"
    meta = json.loads(dispatch.metadata)
    assert meta == {
        "hivecall": 1,
        "call_id": call["id"],
        "agent_id": call["agent"]["id"],
        "agent_name": "echo",
    }
    no_secrets(dispatch.metadata + made.metadata)

    # The caller's token: this room only, audio and data, nothing administrative, 15 minutes.
    claims = claims_of(lk["token"])
    assert claims.identity == lk["identity"] and lk["identity"].startswith("human-")
    assert claims.name == "Host"
    assert claims.attributes == {"hivecall.kind": "human"}
    v = claims.video
    assert v is not None
    assert (v.room_join, v.room, v.can_publish, v.can_subscribe, v.can_publish_data) == (
        True,
        room,
        True,
        True,
        True,
    )
    assert v.can_publish_sources == ["microphone"]
    assert not (v.room_admin or v.room_create or v.room_list or v.room_record or v.agent)
    payload = json.loads(base64.urlsafe_b64decode(lk["token"].split(".")[1] + "==").decode())
    assert payload["exp"] - payload["nbf"] == 15 * 60
    expires = datetime.fromisoformat(lk["expires_at"])
    assert abs((expires - datetime.now(UTC)).total_seconds() - 15 * 60) < 30

    # A fresh token for the same person (after a reload or a dropped connection).
    r = await client.post(f"/api/calls/{call['id']}/token")
    assert r.status_code == 200, r.text
    again = r.json()["livekit"]
    assert again["identity"] == lk["identity"] and again["room"] == room
    assert claims_of(again["token"]).video == claims.video

    # The history shows the call like any other.
    r = await client.get(f"/api/calls/{call['id']}")
    assert r.json()["call"]["mode"] == "cloud"


async def test_without_the_plan_or_livekit_cloud_calls_say_what_is_missing(
    app: Starlette, client: httpx.AsyncClient, livekit: LiveKitStandin
) -> None:
    hub = hub_of(app)
    for changes, needle in (
        ({"cloud_calls": False}, "HIVECALL_CLOUD_CALLS"),
        ({"livekit_url": "", "livekit_api_secret": ""}, "LIVEKIT_URL, LIVEKIT_API_SECRET"),
    ):
        hub.settings = hub.settings.replace(**changes)
        modes = (await client.get("/api/calls/modes")).json()
        (cloud,) = [m for m in modes["modes"] if m["mode"] == "cloud"]
        assert cloud["available"] is False and cloud["code"] == "cloud_not_enabled"
        assert needle in cloud["reason"]
        r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
        assert r.status_code == 402
        assert r.json()["error"]["code"] == "cloud_not_enabled"
        assert needle in r.json()["error"]["message"]
        # BYOK still works (its key is set), and nothing was recorded or asked of LiveKit.
        assert modes["default"] == "byok"
        assert (await client.get("/api/calls")).json()["calls"] == []
        assert livekit.requests == []


async def test_livekit_down_is_a_clear_error_and_a_failed_call(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    hub.settings = hub.settings.replace(livekit_url="http://127.0.0.1:9")
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "livekit_unreachable"
    assert "LIVEKIT_URL" in r.json()["error"]["message"]
    (failed,) = (await client.get("/api/calls")).json()["calls"]
    assert failed["state"] == "failed" and failed["error"]["code"] == "livekit_unreachable"


async def test_a_failed_dispatch_closes_the_room_it_made(
    client: httpx.AsyncClient, livekit: LiveKitStandin
) -> None:
    livekit.fail("CreateDispatch", "internal", "dispatch broke")
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "livekit_error"
    (failed,) = (await client.get("/api/calls")).json()["calls"]
    assert failed["state"] == "failed"
    assert f"hivecall-{failed['id']}" not in livekit.rooms
    assert [m.method for m in livekit.requests] == ["CreateRoom", "CreateDispatch", "DeleteRoom"]


async def test_a_record_that_cannot_be_written_leaves_no_room(
    app: Starlette,
    client: httpx.AsyncClient,
    livekit: LiveKitStandin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The record is written while LiveKit makes the room: if the record fails, the room goes.
    async def broken(**_: Any) -> None:
        raise HivecallError("the store is read-only", code="store_unavailable", status=503)

    monkeypatch.setattr(hub_of(app).calls, "create", broken)
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
    assert [m.method for m in livekit.requests] == ["CreateRoom", "DeleteRoom"]
    assert not [name for name in livekit.rooms if name.startswith("hivecall-")]
    monkeypatch.undo()
    assert (await client.get("/api/calls")).json()["calls"] == []


async def test_a_wrong_secret_is_refused_without_saying_the_secret(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    hub = hub_of(app)
    hub.settings = hub.settings.replace(livekit_api_secret="lk-wrong-secret-000000000000000000000")
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "livekit_unauthorized"
    assert "lk-wrong-secret" not in r.text
    (failed,) = (await client.get("/api/calls")).json()["calls"]
    assert failed["state"] == "failed" and failed["error"]["code"] == "livekit_unauthorized"


async def test_the_owner_sees_and_removes_people(
    client: httpx.AsyncClient, livekit: LiveKitStandin
) -> None:
    call = await start(client)
    room = call["livekit"]["room"]
    livekit.join(room, "guest-1234abcd", name="Sam", attributes={"hivecall.kind": "human"})
    livekit.join(
        room,
        "agent-echo",
        name="echo",
        kind=models.ParticipantInfo.Kind.AGENT,
        attributes={"hivecall.kind": "agent", "hivecall.agent_id": "echo"},
    )
    r = await client.get(f"/api/calls/{call['id']}/participants")
    assert r.status_code == 200, r.text
    people = {p["identity"]: p for p in r.json()["participants"]}
    assert people["guest-1234abcd"]["kind"] == "human" and people["guest-1234abcd"]["name"] == "Sam"
    assert people["agent-echo"]["kind"] == "agent" and people["agent-echo"]["agent_id"] == "echo"

    r = await client.delete(f"/api/calls/{call['id']}/participants/guest-1234abcd")
    assert r.status_code == 200 and r.json() == {"removed": "guest-1234abcd"}
    r = await client.get(f"/api/calls/{call['id']}/participants")
    assert [p["identity"] for p in r.json()["participants"]] == ["agent-echo"]
    r = await client.delete(f"/api/calls/{call['id']}/participants/guest-1234abcd")
    assert r.status_code == 404 and r.json()["error"]["code"] == "participant_not_found"


async def test_invites_let_a_friend_join_once_and_expire(
    app: Starlette, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    call = await start(client)
    r = await client.post(f"/api/calls/{call['id']}/invites", json={"name": "for Sam"})
    assert r.status_code == 201, r.text
    invite = r.json()["invite"]
    assert (invite["max_uses"], invite["uses"]) == (1, 0)
    assert invite["url"] == f"http://127.0.0.1:8765/join/{invite['code']}"

    page = await anon.get(f"/join/{invite['code']}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert invite["code"] not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"

    r = await anon.post("/api/join", json={"code": invite["code"], "name": "Sam\n\x00 Smith"})
    assert r.status_code == 200, r.text
    no_secrets(r.text)
    joined = r.json()
    assert joined["call"] == {"id": call["id"], "agent": {"name": "echo"}}
    claims = claims_of(joined["livekit"]["token"])
    assert claims.identity.startswith("guest-") and claims.name == "Sam Smith"
    assert claims.video is not None and claims.video.room == call["livekit"]["room"]
    assert not claims.video.room_admin

    r = await anon.post("/api/join", json={"code": invite["code"], "name": "Eve"})
    assert r.status_code == 410 and r.json()["error"]["code"] == "invite_used"

    # Listed without its code (it is not stored); the use is counted.
    (listed,) = (await client.get(f"/api/calls/{call['id']}/invites")).json()["invites"]
    assert listed["uses"] == 1 and "code" not in listed and "url" not in listed

    # Several uses, then revoked; another one expired.
    r = await client.post(f"/api/calls/{call['id']}/invites", json={"max_uses": 3})
    multi = r.json()["invite"]
    for name in ("A", "B"):
        assert (await anon.post("/api/join", json={"code": multi["code"], "name": name})).is_success
    r = await client.delete(f"/api/calls/{call['id']}/invites/{multi['id']}")
    assert r.json()["invite"]["revoked"] is True
    r = await anon.post("/api/join", json={"code": multi["code"], "name": "C"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "invite_not_found"

    old = (await client.post(f"/api/calls/{call['id']}/invites", json={})).json()["invite"]
    async with hub_of(app).store.engine.begin() as conn:
        await conn.execute(
            update(CallInvite)
            .where(CallInvite.id == old["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = await anon.post("/api/join", json={"code": old["code"], "name": "Late"})
    assert r.status_code == 410 and r.json()["error"]["code"] == "invite_expired"

    for bad in ({"code": "x" * 20, "name": "A"}, {"code": "short"}, {"name": "no code"}):
        r = await anon.post("/api/join", json=bad)
        assert r.status_code in (400, 404)

    # After the call ends, a fresh invite cannot be used.
    fresh = (await client.post(f"/api/calls/{call['id']}/invites", json={})).json()["invite"]
    assert (await client.post(f"/api/calls/{call['id']}/end")).is_success
    r = await anon.post("/api/join", json={"code": fresh["code"], "name": "Too late"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_finished"
    r = await client.post(f"/api/calls/{call['id']}/invites", json={})
    assert r.status_code == 409


async def test_another_agent_joins_with_its_own_voice(
    client: httpx.AsyncClient, livekit: LiveKitStandin
) -> None:
    r = await client.post("/api/agents", json={"name": "helper", "runtime": "echo"})
    assert r.status_code == 201, r.text
    call = await start(client)
    r = await client.post(f"/api/calls/{call['id']}/agents", json={"agent_id": "helper"})
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["agent"]["name"] == "helper" and added["agent"]["voice"] != "marin"
    dispatches = dispatches_in(livekit, call["livekit"]["room"])
    assert [json.loads(d.metadata)["agent_name"] for d in dispatches] == ["echo", "helper"]
    assert json.loads(dispatches[1].metadata)["agent_id"] == added["agent"]["id"]
    assert added["dispatch_id"] == dispatches[1].id

    for agent in ("helper", "echo"):
        r = await client.post(f"/api/calls/{call['id']}/agents", json={"agent_id": agent})
        assert r.status_code == 409 and r.json()["error"]["code"] == "agent_in_call"
    r = await client.post(f"/api/calls/{call['id']}/agents", json={"agent_id": "nobody"})
    assert r.status_code == 404
    assert len(dispatches_in(livekit, call["livekit"]["room"])) == 2


async def test_the_worker_claims_its_job_and_its_token_does_only_that_call(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, livekit: LiveKitStandin
) -> None:
    call = await start(client)
    other = await start(client)

    # Not signed with the hub's LiveKit secret, not the worker, not dispatched: refused.
    for headers in (
        {},
        {"authorization": f"Bearer {worker_jwt(secret='lk-not-the-secret-0000000000000000')}"},
        {"authorization": f"Bearer {worker_jwt(identity='someone-else')}"},
        {"authorization": f"Bearer {OWNER}"},
    ):
        r = await anon.post(
            "/api/cloud/claim", json={"call_id": call["id"], "agent_id": "echo"}, headers=headers
        )
        assert r.status_code == 401, r.text
    r = await client.post("/api/agents", json={"name": "helper", "runtime": "echo"})
    r = await claim(anon, call, "helper")
    assert r.status_code == 404 and r.json()["error"]["code"] == "call_not_found"

    r = await claim(anon, call, "echo")
    assert r.status_code == 200, r.text
    got = r.json()
    no_secrets(r.text)
    assert got["call"] == {"id": call["id"], "room": call["livekit"]["room"]}
    assert got["agent"]["name"] == "echo" and got["agent"]["voice"] == "marin"
    assert "ask_computer_agent" in got["agent"]["instructions"]
    assert "group call" in got["agent"]["instructions"]
    assert got["agents"] == ["echo"]
    assert (await client.get(f"/api/calls/{call['id']}")).json()["call"]["state"] == "connecting"

    headers = {"authorization": f"Bearer {got['token']}"}
    # It relays a turn into its call, reports lines and phases, reads its call.
    r = await anon.post(
        "/api/phone",
        json={"agent_id": "echo", "message": "what changed?", "call_id": call["id"]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    r = await anon.post(
        f"/api/calls/{call['id']}/events",
        json={
            "events": [
                {"type": "phase", "phase": "talking"},
                {"type": "user", "text": "what changed?", "speaker": "Sam"},
                {"type": "agent", "text": "Two files.", "speaker": "echo"},
            ]
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    shown = (await anon.get(f"/api/calls/{call['id']}", headers=headers)).json()
    assert shown["call"]["state"] == "talking"
    lines = [(ln["kind"], ln["speaker"], ln["text"]) for ln in shown["lines"]]
    assert ("user", "Sam", "what changed?") in lines and ("agent", "echo", "Two files.") in lines
    assert ("tool", "", "what changed?") in lines
    assert len(shown["turns"]) == 1

    # Nothing else: no other call, no turns outside a call, no agents, no new calls.
    for method, path, body in (
        ("POST", "/api/phone", {"agent_id": "echo", "message": "hi"}),
        ("GET", "/api/agents", None),
        ("POST", "/api/calls", {"agent_id": "echo", "mode": "cloud"}),
        ("GET", "/api/calls", None),
        ("GET", f"/api/calls/{call['id']}/participants", None),
        ("POST", f"/api/calls/{call['id']}/invites", {}),
        ("POST", f"/api/calls/{call['id']}/end", None),
        ("POST", f"/api/calls/{call['id']}/token", None),
        ("GET", "/api/settings", None),
    ):
        r = await anon.request(method, path, json=body, headers=headers)
        assert r.status_code == 403, (path, r.text)
    for method, path, body in (
        ("POST", "/api/phone", {"agent_id": "echo", "message": "hi", "call_id": other["id"]}),
        ("GET", f"/api/calls/{other['id']}", None),
        ("POST", f"/api/calls/{other['id']}/events", {"events": [{"type": "user", "text": "x"}]}),
    ):
        r = await anon.request(method, path, json=body, headers=headers)
        assert r.status_code == 404, (path, r.text)

    # The owner ends the call: the room is closed and the worker's token stops working.
    r = await client.post(f"/api/calls/{call['id']}/end")
    assert r.status_code == 200
    assert call["livekit"]["room"] not in livekit.rooms
    r = await anon.get(f"/api/calls/{call['id']}", headers=headers)
    assert r.status_code == 401
    r = await claim(anon, call, "echo")
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_finished"


async def test_the_worker_reporting_the_end_closes_the_room(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, livekit: LiveKitStandin
) -> None:
    call = await start(client)
    token = (await claim(anon, call, "echo")).json()["token"]
    r = await anon.post(
        f"/api/calls/{call['id']}/events",
        json={"events": [{"type": "phase", "phase": p} for p in ("talking", "ended")]},
        headers={"authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["call"]["state"] == "ended"
    assert call["livekit"]["room"] not in livekit.rooms


async def test_cloud_routes_refuse_other_modes_and_other_peoples_calls(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    # A BYOK call (OpenAI is not reachable here, so it is recorded as failed).
    await client.post("/api/calls", json={"agent_id": "echo", "mode": "byok"})
    (byok,) = (await client.get("/api/calls")).json()["calls"]
    r = await client.get(f"/api/calls/{byok['id']}/participants")
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_mode_mismatch"

    call = await start(client)
    token, _ = await hub_of(app).tokens.create(kind="device", scopes=("calls",), name="phone")
    async with httpx.AsyncClient(
        transport=client._transport,  # the same app
        base_url="http://127.0.0.1:8765",
        headers={"authorization": f"Bearer {token}"},
    ) as device:
        for method, path in (
            ("GET", f"/api/calls/{call['id']}/participants"),
            ("POST", f"/api/calls/{call['id']}/invites"),
            ("POST", f"/api/calls/{call['id']}/agents"),
        ):
            r = await device.request(method, path, json={"agent_id": "echo"})
            assert r.status_code == 404, path
        mine = await start(device)
        assert mine["livekit"]["identity"] != call["livekit"]["identity"]
        assert claims_of(mine["livekit"]["token"]).name == "phone"


@pytest.mark.parametrize("body", [{"max_uses": 0}, {"max_uses": 51}, {"ttl_minutes": 0}, {"x": 1}])
async def test_bad_invites_change_nothing(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    call = await start(client)
    r = await client.post(f"/api/calls/{call['id']}/invites", json=body)
    assert r.status_code == 400
    assert (await client.get(f"/api/calls/{call['id']}/invites")).json()["invites"] == []


async def test_a_restarted_hub_dispatches_again_the_agents_no_worker_took(
    settings: Settings, environ: dict[str, str], workspace: Path, livekit: LiveKitStandin
) -> None:
    """livekit-server drops a dispatch no worker was registered to take: the hub dispatches
    again while the call rings, and a hub started again goes on doing so."""
    first = create_app(settings, environ=environ, workspace=workspace)
    async with first.router.lifespan_context(first), owner_client(first) as client:
        call = await start(client)
    room = call["livekit"]["room"]
    assert len(dispatches_in(livekit, room)) == 1  # stopped before any redispatch

    again = create_app(settings, environ=environ, workspace=workspace)
    async with again.router.lifespan_context(again):
        hub_of(again).cloud.redispatch_after = 0.2
        deadline = asyncio.get_running_loop().time() + 10
        while len(dispatches_in(livekit, room)) < 2:
            assert asyncio.get_running_loop().time() < deadline, "not dispatched again"
            await asyncio.sleep(0.05)
        async with owner_client(again) as client:
            shown = (await client.get(f"/api/calls/{call['id']}")).json()
        assert shown["call"]["state"] == "ringing"
        phases = [ln["text"] for ln in shown["lines"] if ln["kind"] == "phase"]
        assert phases == ["waiting for `hivecall worker` to take echo"]
