"""Twirp AgentDispatchService, driven by the unmodified `livekit-api` client."""

from __future__ import annotations

import httpx
import pytest
from livekit import api
from livekit.protocol import agent, agent_dispatch

from tests.livekit_standin.server import LiveKitStandin, running_standin

METADATA = '{"hivecall": 1, "call_id": "call_1", "agent_id": "a1", "agent_name": "Ada"}'


async def test_dispatch_round_trip(lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="hivecall-call_1"))
    dispatch = await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(
            agent_name="hivecall", room="hivecall-call_1", metadata=METADATA
        )
    )
    assert dispatch.id.startswith("AD_")
    assert (dispatch.agent_name, dispatch.room, dispatch.metadata) == (
        "hivecall",
        "hivecall-call_1",
        METADATA,
    )
    assert dispatch.state.created_at > 0

    # No worker is registered with that agent name: its job is dropped (as livekit-server
    # drops it), and the dispatch stays listed without one.
    record = await livekit_standin.wait_for(
        lambda: (j := livekit_standin.job_for(dispatch.id)) and j.dropped and j,
        what="the job to be dropped",
    )
    assert (record.agent_name, record.job.type, record.error) == (
        "hivecall",
        agent.JobType.JT_ROOM,
        "no worker available",
    )
    (listed,) = await lkapi.agent_dispatch.list_dispatch("hivecall-call_1")
    assert (listed.id, listed.metadata) == (dispatch.id, METADATA)
    assert list(listed.state.jobs) == []
    got = await lkapi.agent_dispatch.get_dispatch(dispatch.id, "hivecall-call_1")
    assert got is not None and got.id == dispatch.id
    assert [d.id for d in livekit_standin.dispatches] == [dispatch.id]

    deleted = await lkapi.agent_dispatch.delete_dispatch(dispatch.id, "hivecall-call_1")
    assert deleted.id == dispatch.id
    assert await lkapi.agent_dispatch.list_dispatch("hivecall-call_1") == []
    with pytest.raises(api.TwirpError) as caught:
        await lkapi.agent_dispatch.delete_dispatch(dispatch.id, "hivecall-call_1")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        404,
        "not_found",
        "twirp error unknown: dispatch ID not found",
    )


async def test_a_dispatch_creates_its_room(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin
) -> None:
    """livekit-server (room.auto_create, the default) creates the room for a dispatch."""
    await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="hivecall", room="fresh")
    )
    assert list(livekit_standin.rooms) == ["fresh"]
    assert livekit_standin.rooms["fresh"].empty_timeout == 300


async def test_without_auto_create_the_room_must_exist() -> None:
    with running_standin(auto_create=False) as standin:
        async with api.LiveKitAPI(standin.url, standin.api_key, standin.api_secret) as lkapi:
            with pytest.raises(api.TwirpError) as caught:
                await lkapi.agent_dispatch.create_dispatch(
                    api.CreateAgentDispatchRequest(agent_name="hivecall", room="nowhere")
                )
            assert (caught.value.status, caught.value.message) == (
                404,
                "twirp error unknown: requested room does not exist",
            )
            with pytest.raises(api.TwirpError):
                await lkapi.agent_dispatch.list_dispatch("nowhere")
        assert standin.rooms == {}


async def test_rooms_created_with_agents_dispatch_them(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin
) -> None:
    await lkapi.room.create_room(
        api.CreateRoomRequest(
            name="r", agents=[api.RoomAgentDispatch(agent_name="hivecall", metadata=METADATA)]
        )
    )
    (dispatch,) = await lkapi.agent_dispatch.list_dispatch("r")
    assert (dispatch.agent_name, dispatch.metadata) == ("hivecall", METADATA)


def test_dispatch_needs_room_admin_for_that_room(livekit_standin: LiveKitStandin) -> None:
    body = agent_dispatch.CreateAgentDispatchRequest(agent_name="x", room="r").SerializeToString()
    url = f"{livekit_standin.url}/twirp/livekit.AgentDispatchService/CreateDispatch"
    for grants in (
        api.VideoGrants(room_create=True),
        api.VideoGrants(room_admin=True, room="other"),
        api.VideoGrants(room_join=True, room="r"),
    ):
        token = livekit_standin.token("someone", grants=grants)
        response = httpx.post(
            url,
            content=body,
            headers={"content-type": "application/protobuf", "authorization": f"Bearer {token}"},
        )
        assert response.status_code == 401
        assert response.json() == {"code": "unauthenticated", "msg": "permissions denied"}
    assert livekit_standin.dispatches == []
    assert livekit_standin.rooms == {}
