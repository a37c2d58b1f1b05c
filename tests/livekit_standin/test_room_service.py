"""Twirp RoomService, driven by the unmodified `livekit-api` client (and raw httpx for the
requests that client cannot make: other grants, bad routes, JSON)."""

from __future__ import annotations

import time

import httpx
import pytest
from livekit import api
from livekit.protocol import models, room

from tests.livekit_standin.records import RoomFullError
from tests.livekit_standin.server import AGENT, LiveKitStandin

OTHER_SECRET = "not-the-standin-secret-0123456789abcdefghijkl"


async def test_create_room_keeps_its_settings(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin
) -> None:
    before = time.time()
    created = await lkapi.room.create_room(
        api.CreateRoomRequest(
            name="hivecall-call_1", empty_timeout=120, max_participants=8, metadata='{"c": 1}'
        )
    )
    assert created.name == "hivecall-call_1"
    assert created.sid.startswith("RM_")
    assert (created.empty_timeout, created.max_participants) == (120, 8)
    assert created.metadata == '{"c": 1}'
    assert before - 1 <= created.creation_time <= time.time()
    assert created.creation_time_ms // 1000 == created.creation_time

    (listed,) = (await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms
    assert listed == created
    assert livekit_standin.rooms["hivecall-call_1"] == created

    # CreateRoom on an existing room updates what the request sets and keeps the rest.
    again = await lkapi.room.create_room(
        api.CreateRoomRequest(name="hivecall-call_1", metadata="x")
    )
    assert again.sid == created.sid
    assert (again.empty_timeout, again.max_participants, again.metadata) == (120, 8, "x")


async def test_rooms_get_livekit_defaults(lkapi: api.LiveKitAPI) -> None:
    created = await lkapi.room.create_room(api.CreateRoomRequest(name="plain"))
    assert (created.empty_timeout, created.departure_timeout, created.max_participants) == (
        300,
        20,
        0,
    )


async def test_list_rooms_by_name(lkapi: api.LiveKitAPI) -> None:
    for name in ("a", "b", "c"):
        await lkapi.room.create_room(api.CreateRoomRequest(name=name))
    rooms = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["a", "c", "z"]))).rooms
    assert sorted(r.name for r in rooms) == ["a", "c"]


async def test_delete_room(lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="gone"))
    livekit_standin.join("gone", "human-1")
    assert await lkapi.room.delete_room(api.DeleteRoomRequest(room="gone")) == (
        api.DeleteRoomResponse()
    )
    assert livekit_standin.rooms == {}
    assert livekit_standin.participants("gone") == []

    with pytest.raises(api.TwirpError) as caught:
        await lkapi.room.delete_room(api.DeleteRoomRequest(room="gone"))
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert caught.value.message == "twirp error unknown: requested room does not exist"


async def test_participants(lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="r"))
    human = livekit_standin.join(
        "r", "human-0a1b2c3d", "Ann", attributes={"hivecall.kind": "human"}
    )
    livekit_standin.join("r", "agent-a1", "Ada", kind=AGENT)

    listed = (
        await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))
    ).participants
    assert [(p.identity, p.name, p.kind) for p in listed] == [
        ("human-0a1b2c3d", "Ann", models.ParticipantInfo.Kind.STANDARD),
        ("agent-a1", "Ada", models.ParticipantInfo.Kind.AGENT),
    ]
    got = await lkapi.room.get_participant(
        api.RoomParticipantIdentity(room="r", identity="human-0a1b2c3d")
    )
    assert got == human
    assert got.sid.startswith("PA_")
    assert dict(got.attributes) == {"hivecall.kind": "human"}
    assert got.state == models.ParticipantInfo.State.ACTIVE
    assert (await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms[0].num_participants == 2

    removed = await lkapi.room.remove_participant(
        api.RoomParticipantIdentity(room="r", identity="human-0a1b2c3d")
    )
    assert removed == room.RemoveParticipantResponse()
    assert [p.identity for p in livekit_standin.participants("r")] == ["agent-a1"]

    # An unknown room lists no participants (livekit-server's LocalStore does the same).
    unknown = await lkapi.room.list_participants(api.ListParticipantsRequest(room="nowhere"))
    assert list(unknown.participants) == []


async def test_missing_participants_are_404(lkapi: api.LiveKitAPI) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="r"))
    with pytest.raises(api.TwirpError) as removing:
        await lkapi.room.remove_participant(
            api.RoomParticipantIdentity(room="r", identity="nobody")
        )
    assert (removing.value.status, removing.value.code) == (404, "not_found")
    assert removing.value.message == "twirp error unknown: participant does not exist"
    with pytest.raises(api.TwirpError) as getting:
        await lkapi.room.get_participant(api.RoomParticipantIdentity(room="r", identity="nobody"))
    assert (getting.value.status, getting.value.code) == (404, "not_found")


async def test_max_participants(lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="small", max_participants=2))
    livekit_standin.join("small", "human-1")
    livekit_standin.join("small", "human-2")
    with pytest.raises(RoomFullError, match="max participants"):
        livekit_standin.join("small", "human-3")
    # Agents are "dependent" participants: not counted and not limited.
    livekit_standin.join("small", "agent-a1", kind=AGENT)
    # The same identity again replaces the earlier participant.
    livekit_standin.join("small", "human-2", "Again")
    names = {p.identity: p.name for p in livekit_standin.participants("small")}
    assert names == {"human-1": "", "human-2": "Again", "agent-a1": ""}

    await lkapi.room.remove_participant(
        api.RoomParticipantIdentity(room="small", identity="human-1")
    )
    livekit_standin.join("small", "human-3")


async def test_a_wrong_secret_is_401(livekit_standin: LiveKitStandin) -> None:
    async with api.LiveKitAPI(livekit_standin.url, livekit_standin.api_key, OTHER_SECRET) as bad:
        with pytest.raises(api.TwirpError) as caught:
            await bad.room.create_room(api.CreateRoomRequest(name="r"))
    assert (caught.value.status, caught.value.code) == (401, "unauthenticated")
    assert caught.value.message.startswith("invalid token: InvalidSignatureError")
    assert livekit_standin.rooms == {}
    (record,) = livekit_standin.requests
    assert (record.method, record.status, record.grants) == ("CreateRoom", 401, None)


async def test_another_api_key_is_401(livekit_standin: LiveKitStandin) -> None:
    async with api.LiveKitAPI(livekit_standin.url, "APIother", livekit_standin.api_secret) as bad:
        with pytest.raises(api.TwirpError) as caught:
            await bad.room.list_rooms(api.ListRoomsRequest())
    assert caught.value.status == 401
    assert "InvalidIssuerError" in caught.value.message


def twirp(
    standin: LiveKitStandin, method: str, token: str | None, body: bytes = b""
) -> httpx.Response:
    headers = {"content-type": "application/protobuf"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(
        f"{standin.url}/twirp/livekit.RoomService/{method}", content=body, headers=headers
    )


def test_a_missing_grant_is_refused(livekit_standin: LiveKitStandin) -> None:
    """A participant token (roomJoin only) cannot create rooms. livekit-server answers a missing
    grant with twirpAuthError: 401 `unauthenticated` "permissions denied" (not 403)."""
    joiner = livekit_standin.token("human-1", grants=api.VideoGrants(room_join=True, room="r"))
    body = room.CreateRoomRequest(name="r").SerializeToString()
    response = twirp(livekit_standin, "CreateRoom", joiner, body)
    assert response.status_code == 401
    assert response.json() == {"code": "unauthenticated", "msg": "permissions denied"}
    assert livekit_standin.rooms == {}
    (record,) = livekit_standin.requests
    assert record.identity == "human-1"
    assert record.grants is not None and record.grants.room_join
    assert record.request == room.CreateRoomRequest(name="r")

    # No token at all: the same answer.
    assert twirp(livekit_standin, "CreateRoom", None, body).json()["msg"] == "permissions denied"
    # roomList is not roomCreate, and roomCreate is not roomList.
    lister = livekit_standin.token(grants=api.VideoGrants(room_list=True))
    assert twirp(livekit_standin, "CreateRoom", lister, body).status_code == 401
    creator = livekit_standin.token(grants=api.VideoGrants(room_create=True))
    assert twirp(livekit_standin, "CreateRoom", creator, body).status_code == 200
    assert twirp(livekit_standin, "ListRooms", creator).status_code == 401
    assert twirp(livekit_standin, "ListRooms", lister).status_code == 200


def test_room_admin_is_for_one_room(livekit_standin: LiveKitStandin) -> None:
    livekit_standin.add_room("mine")
    livekit_standin.add_room("theirs")
    admin = livekit_standin.token(grants=api.VideoGrants(room_admin=True, room="mine"))
    mine = room.ListParticipantsRequest(room="mine").SerializeToString()
    theirs = room.ListParticipantsRequest(room="theirs").SerializeToString()
    assert twirp(livekit_standin, "ListParticipants", admin, mine).status_code == 200
    assert twirp(livekit_standin, "ListParticipants", admin, theirs).status_code == 401
    # roomAdmin alone does not delete rooms (that needs roomCreate).
    gone = room.DeleteRoomRequest(room="mine").SerializeToString()
    assert twirp(livekit_standin, "DeleteRoom", admin, gone).status_code == 401


def test_bad_requests(livekit_standin: LiveKitStandin) -> None:
    creator = livekit_standin.token(grants=api.VideoGrants(room_create=True))
    assert twirp(livekit_standin, "CreateRoom", creator, b"\xff\xff").json()["code"] == "malformed"
    nameless = twirp(livekit_standin, "CreateRoom", creator, b"")
    assert (nameless.status_code, nameless.json()["code"]) == (400, "invalid_argument")
    unknown = twirp(livekit_standin, "Teleport", creator)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "bad_route")
    got = httpx.get(f"{livekit_standin.url}/twirp/livekit.RoomService/ListRooms")
    assert (got.status_code, got.json()["code"]) == (404, "bad_route")
    basic = httpx.post(
        f"{livekit_standin.url}/twirp/livekit.RoomService/ListRooms",
        headers={"content-type": "application/protobuf", "authorization": "Basic eDp5"},
    )
    assert (basic.status_code, basic.json()["code"]) == (401, "unauthenticated")


def test_json_bodies(livekit_standin: LiveKitStandin) -> None:
    """Twirp's JSON form (what the JS server SDK sends)."""
    creator = livekit_standin.token(grants=api.VideoGrants(room_create=True))
    response = httpx.post(
        f"{livekit_standin.url}/twirp/livekit.RoomService/CreateRoom",
        json={"name": "js", "emptyTimeout": 60, "max_participants": 3},
        headers={"authorization": f"Bearer {creator}"},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["empty_timeout"], body["max_participants"]) == ("js", 60, 3)


async def test_records_and_handling_time(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin
) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="r", max_participants=4))
    await lkapi.room.list_participants(api.ListParticipantsRequest(room="r"))
    create, listing = livekit_standin.requests
    assert (create.service, create.method, create.status, create.code) == (
        "RoomService",
        "CreateRoom",
        200,
        "",
    )
    assert create.identity == ""  # the server SDK's API tokens carry no identity
    assert create.grants is not None and create.grants.room_create
    assert create.request == room.CreateRoomRequest(name="r", max_participants=4)
    assert listing.grants is not None
    assert (listing.grants.room_admin, listing.grants.room) == (True, "r")
    assert 0 < create.seconds < 1
    assert livekit_standin.handling_seconds == pytest.approx(create.seconds + listing.seconds)
    livekit_standin.reset_records()
    assert livekit_standin.requests == []


async def test_injected_failures_and_delays(
    lkapi: api.LiveKitAPI, livekit_standin: LiveKitStandin
) -> None:
    livekit_standin.fail("CreateRoom", "unavailable", "down for a moment", times=1)
    with pytest.raises(api.TwirpError) as caught:
        await lkapi.room.create_room(api.CreateRoomRequest(name="r"))
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        503,
        "unavailable",
        "twirp error unknown: down for a moment",
    )
    assert livekit_standin.rooms == {}
    await lkapi.room.create_room(api.CreateRoomRequest(name="r"))  # only once

    livekit_standin.fail("ListRooms", "internal", times=None)
    for _ in range(2):
        with pytest.raises(api.TwirpError):
            await lkapi.room.list_rooms(api.ListRoomsRequest())

    livekit_standin.clear_faults()
    livekit_standin.delay("ListRooms", 0.2)
    started = time.monotonic()
    await lkapi.room.list_rooms(api.ListRoomsRequest())
    assert time.monotonic() - started >= 0.2
    assert livekit_standin.requests[-1].seconds >= 0.2
