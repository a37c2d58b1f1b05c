"""What a device token may do: list agents, start and end its own calls, relay its own calls'
tool turns, read its own history. Nothing owner-only, and nothing of another device's."""

from __future__ import annotations

import re
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from tests.pairing.conftest import Phone

# Routes a paired phone may use (method, path); everything else under /api/ and /v1/ is refused.
DEVICE_ROUTES = {
    ("GET", "/api/agents"),
    ("GET", "/api/agents/{ref}"),
    ("GET", "/api/calls/modes"),
    ("POST", "/api/calls"),
    ("GET", "/api/calls"),
    ("GET", "/api/calls/{call_id}"),
    ("POST", "/api/calls/{call_id}/events"),
    ("POST", "/api/calls/{call_id}/end"),
    ("POST", "/api/calls/{call_id}/local/offer"),  # its own local calls' offers
    ("POST", "/api/phone"),  # only with the call_id of its own live call (tested below)
    ("POST", "/api/logout"),  # ends a browser session; a device token has none
    # A phone manages the cloud calls it started (others' are reported missing).
    ("POST", "/api/calls/{call_id}/token"),
    ("GET", "/api/calls/{call_id}/participants"),
    ("DELETE", "/api/calls/{call_id}/participants/{identity}"),
    ("POST", "/api/calls/{call_id}/agents"),
    ("POST", "/api/calls/{call_id}/invites"),
    ("GET", "/api/calls/{call_id}/invites"),
    ("DELETE", "/api/calls/{call_id}/invites/{invite_id}"),
    # A phone follows and stops the turns of its own calls (others' are reported missing:
    # tests/test_long_turns.py).
    ("GET", "/api/turns/{turn_id}"),
    ("GET", "/api/turns/{turn_id}/events"),
    ("POST", "/api/turns/{turn_id}/cancel"),
}
# Routes anyone may use, with or without a token.
PUBLIC_ROUTES = {
    ("GET", "/api/health"),
    ("GET", "/api/version"),  # Ollama's: clients ask it before anything else
    ("POST", "/api/pairing/claim"),
    # Their own credentials: an invite code, the worker's LiveKit-signed token.
    ("POST", "/api/join"),
    ("POST", "/api/cloud/claim"),
}
PARAMS = {"ref": "echo", "model": "echo", "name": "somekey"}


def api_routes(app: Starlette) -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith(("/api/", "/v1/"))
        for method in route.methods or ()
        if method != "HEAD"
    )


async def test_every_owner_only_route_refuses_a_device_token(
    app: Starlette, client: httpx.AsyncClient, pair_phone: Any
) -> None:
    phone: Phone = await pair_phone()
    other: Phone = await pair_phone("Other phone")
    made = (await client.post("/api/pairing")).json()["pairing"]
    routes = api_routes(app)
    # The lists above name real routes (a renamed route must not slip out of this test).
    assert set(routes) >= (DEVICE_ROUTES | PUBLIC_ROUTES)
    refused = [r for r in routes if r not in DEVICE_ROUTES | PUBLIC_ROUTES]
    for must in (
        ("GET", "/api/devices"),
        ("DELETE", "/api/devices/{id}"),
        ("POST", "/api/pairing"),
        ("GET", "/api/pairing/{id}"),
        ("GET", "/api/settings"),
        ("PATCH", "/api/settings"),
        ("POST", "/api/agents"),
        ("GET", "/api/keys"),
        ("GET", "/api/turns"),
    ):
        assert must in refused
    ids = {"id": other.id, "turn_id": "x", "call_id": "x"}
    for method, path in refused:
        url = re.sub(r"\{(\w+)\}", lambda m: {**PARAMS, **ids}.get(m.group(1), "x"), path)
        if path == "/api/pairing/{id}":
            url = f"/api/pairing/{made['id']}"
        body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}], "prompt": "hi"}
        if path == "/api/chat/agent-runtime":
            body = {"agent_id": "echo", "messages": [{"role": "user", "content": "hi"}]}
        r = await phone.client.request(method, url, json=body)
        assert r.status_code == 403, (method, path, r.status_code, r.text)

    # A turn outside a call is owner-only too.
    r = await phone.client.post("/api/phone", json={"agent_id": "echo", "message": "hi"})
    assert r.status_code == 403 and "call_id" in r.json()["error"]["message"]
    # Nothing changed: both devices still paired, settings and agents as they were.
    devices = (await client.get("/api/devices")).json()["devices"]
    assert [d["name"] for d in devices] == ["Pixel 8", "Other phone"]
    assert [a["name"] for a in (await client.get("/api/agents")).json()["agents"]] == ["echo"]


async def start_call(c: httpx.AsyncClient) -> dict[str, Any]:
    r = await c.post("/api/calls", json={"agent_id": "echo"})
    assert r.status_code == 201, r.text
    call: dict[str, Any] = r.json()["call"]
    return call


async def test_a_phone_calls_and_sees_only_its_own_calls(
    client: httpx.AsyncClient, pair_phone: Any
) -> None:
    mine: Phone = await pair_phone("Pixel 8")
    theirs: Phone = await pair_phone("iPhone")
    phone = mine.client

    # What the app does: agents, modes, a call, its phases, a tool turn, the end.
    agents = (await phone.get("/api/agents")).json()["agents"]
    assert [(a["name"], a["status"]) for a in agents] == [("echo", "ready")]
    assert (await phone.get("/api/agents/echo")).status_code == 200
    assert (await phone.get("/api/calls/modes")).json()["default"] == "byok"
    call = await start_call(phone)
    assert call["started_by"] == "Pixel 8" and call["realtime"]["client_secret"]
    r = await phone.post(
        f"/api/calls/{call['id']}/events",
        json={"events": [{"type": "phase", "phase": "talking"}, {"type": "user", "text": "hi"}]},
    )
    assert r.status_code == 200 and r.json()["call"]["state"] == "talking"
    r = await phone.post(
        "/api/phone", json={"agent_id": "echo", "message": "status?", "call_id": call["id"]}
    )
    assert r.status_code == 200 and r.json()["ok"] is True

    their_call = await start_call(theirs.client)
    owner_call = await start_call(client)

    # Its history holds its own call only; the owner sees all three.
    listed = (await phone.get("/api/calls")).json()["calls"]
    assert [c["id"] for c in listed] == [call["id"]]
    detail = (await phone.get(f"/api/calls/{call['id']}")).json()
    assert [t["message"] for t in detail["turns"]] == ["status?"]
    owner_sees = {c["id"] for c in (await client.get("/api/calls")).json()["calls"]}
    assert owner_sees == {call["id"], their_call["id"], owner_call["id"]}

    # Another device's call, or the owner's, does not exist as far as this phone knows.
    for other in (their_call, owner_call):
        url = f"/api/calls/{other['id']}"
        for r in (
            await phone.get(url),
            await phone.post(f"{url}/events", json={"events": [{"type": "speaker_only"}]}),
            await phone.post(f"{url}/end"),
            await phone.post(
                "/api/phone", json={"agent_id": "echo", "message": "x", "call_id": other["id"]}
            ),
        ):
            assert r.status_code == 404 and r.json()["error"]["code"] == "call_not_found"
    theirs_now = (await client.get(f"/api/calls/{their_call['id']}")).json()
    assert theirs_now["call"]["state"] == "ringing" and theirs_now["lines"] == []

    r = await phone.post(f"/api/calls/{call['id']}/end")
    assert r.json()["call"]["state"] == "ended"


async def test_unpairing_a_phone_fails_its_live_calls(
    client: httpx.AsyncClient, pair_phone: Any
) -> None:
    phone: Phone = await pair_phone()
    live = await start_call(phone.client)
    done = await start_call(phone.client)
    await phone.client.post(f"/api/calls/{done['id']}/end")
    owner_call = await start_call(client)

    assert (await client.delete(f"/api/devices/{phone.id}")).status_code == 200
    calls = {c["id"]: c for c in (await client.get("/api/calls")).json()["calls"]}
    assert calls[live["id"]]["state"] == "failed"
    assert calls[live["id"]]["error"]["code"] == "device_revoked"
    assert calls[done["id"]]["state"] == "ended"
    assert calls[owner_call["id"]]["state"] == "ringing"
    r = await phone.client.post(
        "/api/phone", json={"agent_id": "echo", "message": "x", "call_id": live["id"]}
    )
    assert r.status_code == 401
