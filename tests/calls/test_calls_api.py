"""Starting BYOK calls: minting with the user's key, call records, phases, transcript, tools."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hivecall.hub import Hub
from tests.keys import FAKE_OPENAI_KEY
from tests.standins.realtime.server import RealtimeStandin


def hub_of(app: Starlette) -> Hub:
    hub: Hub = app.state.hub
    return hub


async def start(client: httpx.AsyncClient, agent: str = "echo", **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/calls", json={"agent_id": agent, **extra})
    assert r.status_code == 201, r.text
    call: dict[str, Any] = r.json()["call"]
    return call


async def test_a_call_mints_a_secret_with_the_users_key(
    client: httpx.AsyncClient, realtime: RealtimeStandin, workspace: Any
) -> None:
    await client.patch("/api/agents/echo", json={"workspace": str(workspace)})
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "byok"})
    assert r.status_code == 201, r.text
    assert FAKE_OPENAI_KEY not in r.text
    call = r.json()["call"]
    assert call["id"].startswith("call_")
    assert (call["mode"], call["state"], call["agent"]["name"]) == ("byok", "ringing", "echo")
    rt = call["realtime"]
    assert rt["client_secret"].startswith("ek_") and rt["client_secret"] in realtime.secrets
    assert rt["webrtc_url"] == realtime.base_url
    assert (rt["model"], rt["voice"]) == ("gpt-realtime", "marin")
    assert rt["expires_at"] == realtime.secrets[rt["client_secret"]].expires_at
    assert [t["name"] for t in rt["tools"]] == ["ask_computer_agent", "cancel_computer_agent"]

    # What OpenAI was asked for: the session the hub built from settings and the agent.
    minted = realtime.mints[-1]
    assert minted["expires_after"] == {"anchor": "created_at", "seconds": 120}
    session = minted["session"]
    assert session["type"] == "realtime" and session["model"] == "gpt-realtime"
    assert session["audio"]["output"]["voice"] == "marin"
    assert session["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
    assert session["audio"]["input"]["turn_detection"]["type"]
    tool, cancel = session["tools"]
    assert (cancel["name"], cancel["parameters"]["properties"]) == ("cancel_computer_agent", {})
    assert tool["name"] == "ask_computer_agent" and tool["type"] == "function"
    assert tool["parameters"]["required"] == ["message"]
    assert tool["parameters"]["properties"]["message"]["type"] == "string"
    assert "echo" in session["instructions"] and str(workspace) in session["instructions"]
    assert "ask_computer_agent" in session["instructions"]


async def test_no_key_is_a_clear_error_and_records_nothing(
    app: Starlette, client: httpx.AsyncClient, realtime: RealtimeStandin
) -> None:
    hub = hub_of(app)
    hub.settings = hub.settings.replace(openai_api_key="")
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "byok"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "openai_key_missing"
    assert "Settings" in err["message"] and "OPENAI_API_KEY" in err["message"]
    assert (await client.get("/api/calls")).json()["calls"] == []
    assert realtime.mints == []
    modes = (await client.get("/api/calls/modes")).json()
    byok = next(m for m in modes["modes"] if m["mode"] == "byok")
    assert byok["available"] is False and byok["code"] == "openai_key_missing"


@pytest.mark.parametrize(
    ("status", "code", "http"),
    [
        (401, "openai_key_rejected", 502),
        (403, "openai_forbidden", 502),
        (429, "openai_rate_limited", 429),
        (500, "openai_unavailable", 502),
        (503, "openai_unavailable", 502),
        (400, "openai_rejected", 502),
    ],
)
async def test_openai_failures_become_clear_errors(
    client: httpx.AsyncClient, realtime: RealtimeStandin, status: int, code: str, http: int
) -> None:
    realtime.fail_mint(status, message=f"Incorrect API key provided: {FAKE_OPENAI_KEY}.")
    r = await client.post("/api/calls", json={"agent_id": "echo"})
    assert r.status_code == http
    assert r.json()["error"]["code"] == code
    assert FAKE_OPENAI_KEY not in r.text and FAKE_OPENAI_KEY[:12] not in r.text
    (call,) = (await client.get("/api/calls")).json()["calls"]
    assert call["state"] == "failed" and call["error"]["code"] == code


async def test_a_slow_openai_times_out(
    client: httpx.AsyncClient, realtime: RealtimeStandin
) -> None:
    realtime.mint_delay = 5  # the settings give OpenAI 2 s
    r = await client.post("/api/calls", json={"agent_id": "echo"})
    assert r.status_code == 504 and r.json()["error"]["code"] == "openai_timeout"


async def test_an_unreachable_openai_is_named(app: Starlette, client: httpx.AsyncClient) -> None:
    hub = hub_of(app)
    hub.settings = hub.settings.replace(openai_base_url="http://127.0.0.1:9/v1")
    r = await client.post("/api/calls", json={"agent_id": "echo"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "openai_unreachable"


async def test_bad_call_requests_change_nothing(
    client: httpx.AsyncClient, realtime: RealtimeStandin
) -> None:
    for body, code in [
        ({"agent_id": "nobody"}, "agent_not_found"),
        ({"agent_id": "echo", "mode": "fax"}, "invalid_request"),
        ({"agent_id": "echo", "extra": 1}, "invalid_request"),
        ({}, "invalid_request"),
    ]:
        r = await client.post("/api/calls", json=body)
        assert r.json()["error"]["code"] == code, body
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
    assert r.json()["error"]["code"] == "cloud_not_enabled"
    assert (await client.get("/api/calls")).json()["calls"] == []
    assert realtime.mints == []


async def test_phases_and_transcript_are_recorded(client: httpx.AsyncClient) -> None:
    call = await start(client)
    url = f"/api/calls/{call['id']}"

    async def report(*events: dict[str, Any]) -> httpx.Response:
        return await client.post(f"{url}/events", json={"events": list(events)})

    r = await report({"type": "phase", "phase": "connecting"})
    assert r.json()["call"]["state"] == "connecting"
    r = await report(
        {"type": "phase", "phase": "talking"},
        {"type": "agent", "text": "Hi, this is echo."},
        {"type": "user", "text": "List the files."},
        {"type": "speaker_only"},
    )
    data = r.json()["call"]
    assert data["state"] == "talking" and data["speaker_only"] is True
    assert data["talking_at"] and data["connecting_at"]
    # A late or repeated report never moves a call backwards.
    r = await report({"type": "phase", "phase": "connecting"})
    assert r.json()["call"]["state"] == "talking"

    r = await client.post(f"{url}/end")
    assert r.json()["call"]["state"] == "ended" and r.json()["call"]["ended_at"]
    # The page flushes its last lines just after hanging up: still kept.
    r = await report({"type": "agent", "text": "Bye."})
    assert r.status_code == 200
    # An ended call cannot fail afterwards.
    r = await report({"type": "phase", "phase": "failed"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_finished"

    detail = (await client.get(url)).json()
    lines = [(ln["kind"], ln["text"]) for ln in detail["lines"]]
    assert lines == [
        ("phase", "connecting"),
        ("phase", "talking"),
        ("agent", "Hi, this is echo."),
        ("user", "List the files."),
        ("phase", "ended"),
        ("agent", "Bye."),
    ]


async def test_bad_events_are_refused_whole(client: httpx.AsyncClient) -> None:
    call = await start(client)
    url = f"/api/calls/{call['id']}/events"
    for events in (
        [{"type": "phase", "phase": "ringing"}],
        [{"type": "agent", "text": "ok"}, {"type": "telepathy"}],
        [{"type": "user", "text": ""}],
        [{"type": "agent", "text": "x" * 4001}],
        [],
    ):
        r = await client.post(url, json={"events": events})
        assert r.status_code == 400, events
    assert [
        ln["kind"] for ln in (await client.get(f"/api/calls/{call['id']}")).json()["lines"]
    ] == []
    r = await client.post(
        "/api/calls/call_nope/events", json={"events": [{"type": "speaker_only"}]}
    )
    assert r.status_code == 404 and r.json()["error"]["code"] == "call_not_found"


async def test_tool_turns_belong_to_the_call(client: httpx.AsyncClient) -> None:
    call = await start(client)
    r = await client.post(
        "/api/phone", json={"agent_id": "echo", "message": "list the files", "call_id": call["id"]}
    )
    body = r.json()
    assert body["ok"] is True and "list the files" in body["text"]
    assert body["session_id"] == call["id"]
    detail = (await client.get(f"/api/calls/{call['id']}")).json()
    (turn,) = detail["turns"]
    assert turn["id"] == body["turn_id"] and turn["call_id"] == call["id"]
    assert [(ln["kind"], ln["text"], ln["turn_id"]) for ln in detail["lines"]] == [
        ("tool", "list the files", body["turn_id"])
    ]

    await client.post("/api/agents", json={"name": "other", "runtime": "echo"})
    r = await client.post(
        "/api/phone", json={"agent_id": "other", "message": "hi", "call_id": call["id"]}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "call_agent_mismatch"
    await client.post(f"/api/calls/{call['id']}/end")
    r = await client.post(
        "/api/phone", json={"agent_id": "echo", "message": "more", "call_id": call["id"]}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_finished"


async def test_a_caller_sees_only_its_own_calls(app: Starlette, client: httpx.AsyncClient) -> None:
    hub = hub_of(app)
    token, _ = await hub.tokens.create(kind="device", scopes=["agents:read", "calls"], name="phone")
    owners = await start(client)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1:8765",
        headers={"authorization": f"Bearer {token}"},
    ) as device:
        mine = await start(device)
        assert mine["started_by"] == "phone"
        assert [c["id"] for c in (await device.get("/api/calls")).json()["calls"]] == [mine["id"]]
        r = await device.get(f"/api/calls/{owners['id']}")
        assert r.status_code == 404
        r = await device.post(f"/api/calls/{owners['id']}/end")
        assert r.status_code == 404
        r = await device.post(
            "/api/phone", json={"agent_id": "echo", "message": "hi", "call_id": owners["id"]}
        )
        assert r.status_code == 404
        # Without a call the device may not run turns at all.
        r = await device.post("/api/phone", json={"agent_id": "echo", "message": "hi"})
        assert r.status_code == 403
        r = await device.post(
            "/api/phone", json={"agent_id": "echo", "message": "hi", "call_id": mine["id"]}
        )
        assert r.status_code == 200 and r.json()["ok"] is True
        for path in ("/api/settings", "/api/turns"):
            assert (await device.get(path)).status_code == 403
    owner_view = [c["id"] for c in (await client.get("/api/calls")).json()["calls"]]
    assert owner_view == [mine["id"], owners["id"]]
