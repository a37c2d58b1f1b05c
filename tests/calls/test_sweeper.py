"""Calls never hang: a call that does not connect within `call_connect_timeout` is failed by the
hub's sweeper, its media stopped, and the failure is in its timeline. Most tests drive one pass
with a `now` past the timeout; one waits for the running hub's own sweeper."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from hivecall.agents.records import AgentCreate
from hivecall.auth import Principal
from hivecall.calls.cloud.wire import room_name
from hivecall.calls.local import Tuning
from hivecall.errors import Conflict
from hivecall.hub import Hub
from hivecall.settings import Settings
from hivecall.store.models import Call
from tests.conftest import OWNER
from tests.keys import FAKE_OPENAI_KEY, LIVEKIT_API_KEY, LIVEKIT_API_SECRET
from tests.livekit_standin.server import LiveKitStandin
from tests.local.caller import Caller
from tests.standins.realtime.server import RealtimeStandin

TIMEOUT = 30.0  # the default call_connect_timeout
OWNER_ID = Principal("owner-token-id", "owner", ("*",), name="owner")


@pytest.fixture
def livekit() -> Iterator[LiveKitStandin]:
    with LiveKitStandin(api_key=LIVEKIT_API_KEY, api_secret=LIVEKIT_API_SECRET) as standin:
        yield standin


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, realtime: RealtimeStandin, livekit: LiveKitStandin
) -> Settings:
    # Every mode available: BYOK (the Realtime stand-in), local, cloud (the LiveKit stand-in).
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        openai_api_key=FAKE_OPENAI_KEY,
        openai_base_url=realtime.base_url,
        cloud_calls=True,
        livekit_url=livekit.url,
        livekit_api_key=LIVEKIT_API_KEY,
        livekit_api_secret=LIVEKIT_API_SECRET,
    )


def hub_of(app: Starlette) -> Hub:
    hub: Hub = app.state.hub
    return hub


async def start(client: httpx.AsyncClient, mode: str) -> dict[str, Any]:
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": mode})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["connect_timeout_s"] == TIMEOUT
    call: dict[str, Any] = body["call"]
    return call


async def phase(client: httpx.AsyncClient, call: dict[str, Any], name: str) -> None:
    r = await client.post(
        f"/api/calls/{call['id']}/events", json={"events": [{"type": "phase", "phase": name}]}
    )
    assert r.status_code == 200, r.text


async def offer(client: httpx.AsyncClient, call: dict[str, Any], caller: Caller) -> httpx.Response:
    return await client.post(
        call["local"]["offer_url"],
        content=await caller.offer(),
        headers={"content-type": "application/sdp"},
    )


async def shown(client: httpx.AsyncClient, call: dict[str, Any]) -> dict[str, Any]:
    """The call as a watching page reads it: its record and its timeline."""
    r = await client.get(f"/api/calls/{call['id']}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def phases(view: dict[str, Any]) -> list[str]:
    return [ln["text"] for ln in view["lines"] if ln["kind"] == "phase"]


async def stamp(hub: Hub, call_id: str, column: str) -> datetime:
    value: datetime = getattr(await hub.calls.get(call_id), column)
    return value


async def sweep_at(hub: Hub, when: datetime) -> list[str]:
    return [f.id for f in await hub.sweeper.sweep(now=when)]


async def test_the_page_learns_the_timeout(app: Starlette, client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/calls/modes")).json()["connect_timeout_s"] == TIMEOUT
    for mode in ("byok", "local", "cloud"):
        await start(client, mode)  # each start answers connect_timeout_s next to the call


async def test_a_call_that_never_gets_an_offer_fails_unanswered_after_the_timeout(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    call = await start(client, "local")
    created = await stamp(hub, call["id"], "created_at")

    assert await sweep_at(hub, created + timedelta(seconds=TIMEOUT - 1)) == []
    assert (await shown(client, call))["call"]["state"] == "ringing"

    assert await sweep_at(hub, created + timedelta(seconds=TIMEOUT + 1)) == [call["id"]]
    view = await shown(client, call)
    assert view["call"]["state"] == "failed"
    assert view["call"]["error"] == {
        "code": "call_unanswered",
        "message": "the call was not answered within 30 s: no offer reached the hub",
    }
    assert view["call"]["ended_at"] is not None
    assert phases(view) == ["failed"]
    # An offer that comes after all finds the call over.
    caller = Caller()
    try:
        r = await offer(client, call, caller)
    finally:
        await caller.close()
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_connected"
    assert hub.local.live == 0


async def test_the_running_hub_fails_an_unanswered_call_by_itself(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    # The sweeper reads the settings at each pass: a change in the dashboard applies at once.
    hub.settings = hub.settings.replace(call_connect_timeout=5.0)
    assert (await client.get("/api/calls/modes")).json()["connect_timeout_s"] == 5.0
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "byok"})
    assert r.status_code == 201 and r.json()["connect_timeout_s"] == 5.0
    call = r.json()["call"]
    assert (await shown(client, call))["call"]["state"] == "ringing"

    async with asyncio.timeout(12):
        while (view := await shown(client, call))["call"]["state"] == "ringing":
            await asyncio.sleep(0.2)
    assert view["call"]["error"] == {
        "code": "call_unanswered",
        "message": "the call was not answered within 5 s: the page never started connecting",
    }
    assert phases(view) == ["failed"]
    ended = datetime.fromisoformat(view["call"]["ended_at"])
    assert ended - datetime.fromisoformat(view["call"]["created_at"]) >= timedelta(seconds=5)
    # A late "connecting" moves nothing, and its answer tells the page the call is over.
    r = await client.post(
        f"/api/calls/{call['id']}/events",
        json={"events": [{"type": "phase", "phase": "connecting"}]},
    )
    assert r.status_code == 200 and r.json()["call"]["state"] == "failed"


async def test_a_byok_call_stuck_connecting_fails_media_failed(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    call = await start(client, "byok")
    await phase(client, call, "connecting")
    connecting = await stamp(hub, call["id"], "connecting_at")

    assert await sweep_at(hub, connecting + timedelta(seconds=TIMEOUT - 1)) == []
    assert await sweep_at(hub, connecting + timedelta(seconds=TIMEOUT + 1)) == [call["id"]]
    view = await shown(client, call)
    assert view["call"]["state"] == "failed"
    assert view["call"]["error"] == {
        "code": "media_failed",
        "message": "the call's audio did not connect within 30 s (the network blocks WebRTC?)",
    }
    assert phases(view) == ["connecting", "failed"]


async def test_a_local_call_stuck_connecting_fails_and_its_peer_is_stopped(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    call = await start(client, "local")
    caller = Caller()
    try:
        r = await offer(client, call, caller)
        assert r.status_code == 201, r.text
        # The caller never takes the answer: no media will flow, as behind a WebRTC-proof wall.
        assert hub.local.live == 1
        connecting = await stamp(hub, call["id"], "connecting_at")
        assert await sweep_at(hub, connecting + timedelta(seconds=TIMEOUT + 1)) == [call["id"]]
    finally:
        await caller.close()
    assert hub.local.live == 0
    view = await shown(client, call)
    assert (view["call"]["state"], view["call"]["error"]["code"]) == ("failed", "media_failed")
    assert phases(view) == ["connecting", "failed"]


async def test_an_offer_racing_the_sweeper_leaves_no_peer_behind(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    call = await start(client, "local")
    ringing = await hub.calls.get(call["id"])  # what the offer's request read
    created = ringing.created_at
    assert await sweep_at(hub, created + timedelta(seconds=TIMEOUT + 1)) == [call["id"]]
    caller = Caller()
    try:
        sdp = await caller.offer()
        with pytest.raises(Conflict) as refused:
            await hub.local.answer(ringing, offer=sdp, max_calls=2, tuning=Tuning())
        assert refused.value.code == "call_connected"
    finally:
        await caller.close()
    assert hub.local.live == 0
    assert (await hub.calls.get(call["id"])).state == "failed"


async def test_the_connecting_timeout_counts_from_the_offer_not_from_the_start(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    call = await start(client, "byok")
    # It rang for 25 s (a slow microphone prompt), then started connecting.
    async with hub.store.engine.begin() as conn:
        await conn.execute(
            update(Call)
            .where(Call.id == call["id"])
            .values(created_at=datetime.now(UTC) - timedelta(seconds=25))
        )
    await phase(client, call, "connecting")
    connecting = await stamp(hub, call["id"], "connecting_at")
    assert await sweep_at(hub, connecting + timedelta(seconds=TIMEOUT - 1)) == []
    assert (await shown(client, call))["call"]["state"] == "connecting"


async def test_calls_that_connected_in_time_or_finished_are_never_swept(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    talking = await start(client, "byok")
    await phase(client, talking, "connecting")
    await phase(client, talking, "talking")
    straight = await start(client, "byok")  # the page may report talking without connecting
    await phase(client, straight, "talking")
    ended = await start(client, "byok")
    assert (await client.post(f"/api/calls/{ended['id']}/end")).status_code == 200
    failed = await start(client, "byok")
    r = await client.post(
        f"/api/calls/{failed['id']}/end", json={"error": {"code": "mic_denied", "message": ""}}
    )
    assert r.status_code == 200

    assert await sweep_at(hub, datetime.now(UTC) + timedelta(days=1)) == []
    for call, state, code in (
        (talking, "talking", None),
        (straight, "talking", None),
        (ended, "ended", None),
        (failed, "failed", "mic_denied"),
    ):
        view = await shown(client, call)
        assert view["call"]["state"] == state
        assert (view["call"]["error"] or {}).get("code") == code
        assert phases(view).count("failed") == (state == "failed")


async def test_a_cloud_call_no_worker_takes_fails_and_its_room_closes(
    app: Starlette, client: httpx.AsyncClient, livekit: LiveKitStandin
) -> None:
    hub = hub_of(app)
    call = await start(client, "cloud")
    assert room_name(call["id"]) in livekit.rooms
    created = await stamp(hub, call["id"], "created_at")
    assert await sweep_at(hub, created + timedelta(seconds=TIMEOUT + 1)) == [call["id"]]
    view = await shown(client, call)
    assert view["call"]["error"] == {
        "code": "call_unanswered",
        "message": "the call was not answered within 30 s: "
        "no agent worker took it: run `hivecall worker` (with this hub's LiveKit settings)",
    }
    assert room_name(call["id"]) not in livekit.rooms


async def test_a_cloud_call_waiting_for_people_is_left_to_its_worker(
    app: Starlette, client: httpx.AsyncClient, livekit: LiveKitStandin
) -> None:
    hub = hub_of(app)
    call = await start(client, "cloud")
    # A worker claimed it: the call is connecting until a person joins, or the worker leaves.
    await hub.calls.advance(await hub.calls.get(call["id"]), "connecting")
    assert await sweep_at(hub, datetime.now(UTC) + timedelta(hours=1)) == []
    assert (await shown(client, call))["call"]["state"] == "connecting"
    assert room_name(call["id"]) in livekit.rooms


async def test_a_start_fails_the_calls_a_stopped_hub_left_past_their_timeout(
    settings: Settings, workspace: Path
) -> None:
    hub = await Hub.open(settings, environ={})
    try:
        agent = await hub.agents.create(AgentCreate(name="coder", runtime="echo"))
        long_ago = datetime.now(UTC) - timedelta(seconds=TIMEOUT + 5)

        async def call(mode: str, *phases: str, since: datetime | None = None) -> Call:
            c = await hub.calls.create(agent_id=agent.id, mode=mode, who=OWNER_ID)
            for name in phases:
                c = await hub.calls.advance(c, name)
            if since is not None:
                async with hub.store.engine.begin() as conn:
                    await conn.execute(
                        update(Call)
                        .where(Call.id == c.id)
                        .values(created_at=since, connecting_at=since if phases else None)
                    )
            return c

        stale_ringing = await call("byok", since=long_ago)
        stale_connecting = await call("byok", "connecting", since=long_ago)
        fresh = await call("byok")
        stale_local = await call("local", since=long_ago)

        await hub.start(workspace=workspace)

        for c, code in (
            (stale_ringing, "call_unanswered"),
            (stale_connecting, "media_failed"),
            # A local call dies with the hub: recovery names that, the sweeper finds it over.
            (stale_local, "hub_restarted"),
        ):
            got = await hub.calls.get(c.id)
            assert (got.state, got.error_code) == ("failed", code)
            assert [ln.text for ln in await hub.calls.lines(c.id)].count("failed") == 1
        assert (await hub.calls.get(fresh.id)).state == "ringing"
    finally:
        await hub.aclose()
