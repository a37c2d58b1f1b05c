"""The real livekit-server, driven by LiveKit's own clients unmodified (`livekit-api`, the
`livekit.rtc` SDK) and by the hub: rooms, media between two participants, a cloud call's room
and dispatch. The last tests pin what the server answers where the stand-in
(tests/livekit_standin/) has to imitate it."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from collections.abc import Awaitable
from pathlib import Path

import httpx
import numpy as np
import pytest
from livekit import api, rtc
from livekit.protocol import room as room_pb
from starlette.applications import Starlette

from hivecall.hub import Hub
from tests.livekit_real.conftest import JoinRoom
from tests.livekit_real.server import RealLiveKit

RATE = 48_000
TONE_HZ = 440.0
FRAME = RATE // 100  # 10 ms


def sockets_of(pid: int) -> set[tuple[str, str, int]]:
    """(protocol, address, port) of each socket a process holds: the TCP ones it listens on,
    every UDP one."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with_target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if with_target.startswith("socket:["):
            inodes.add(with_target[len("socket:[") : -1])
    found = set()
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in inodes or (proto.startswith("tcp") and state != "0A"):  # LISTEN
                continue
            host, port = local.split(":")
            raw = bytes.fromhex(host)
            # /proc/net prints addresses as 32-bit words in host (little-endian) order.
            addr = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((proto, str(ipaddress.ip_address(addr)), int(port, 16)))
    return found


def test_the_server_listens_on_loopback_only(livekit_server: RealLiveKit) -> None:
    """HTTP (API, signalling, workers) and media each on one port of 127.0.0.1, nothing else:
    no ICE/TCP port on every interface, no TURN, no metrics or debug port."""
    assert sockets_of(livekit_server.pid) == {
        ("tcp", "127.0.0.1", livekit_server.port),
        ("udp", "127.0.0.1", livekit_server.udp_port),
    }


async def test_rooms_are_created_listed_and_deleted(lkapi: api.LiveKitAPI) -> None:
    made = await lkapi.room.create_room(
        api.CreateRoomRequest(name="real-rooms", empty_timeout=120, max_participants=4)
    )
    assert made.sid.startswith("RM_")
    assert (made.name, made.empty_timeout, made.max_participants) == ("real-rooms", 120, 4)

    listed = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["real-rooms"]))).rooms
    assert [r.sid for r in listed] == [made.sid]

    await lkapi.room.delete_room(api.DeleteRoomRequest(room="real-rooms"))
    assert (await lkapi.room.list_rooms(api.ListRoomsRequest(names=["real-rooms"]))).rooms == []


def tone(start: int, count: int) -> np.ndarray:
    n = np.arange(start, start + count)
    wave = 0.5 * 32767 * np.sin(2 * np.pi * TONE_HZ * n / RATE)
    return wave.astype(np.int16)


async def play_tone(source: rtc.AudioSource) -> None:
    """Push the tone in 10 ms frames for as long as the task runs (the source paces us once
    its queue is full)."""
    sent = 0
    while True:
        await source.capture_frame(rtc.AudioFrame(tone(sent, FRAME).tobytes(), RATE, 1, FRAME))
        sent += FRAME


async def record(track: rtc.Track, seconds: float) -> np.ndarray:
    stream = rtc.AudioStream(track, sample_rate=RATE, num_channels=1)
    chunks: list[np.ndarray] = []
    try:
        async for event in stream:
            chunks.append(np.frombuffer(event.frame.data, dtype=np.int16).copy())
            if sum(len(c) for c in chunks) >= seconds * RATE:
                break
    finally:
        await stream.aclose()
    return np.concatenate(chunks)


async def test_a_tone_one_participant_publishes_reaches_the_other(join: JoinRoom) -> None:
    listener = await join("real-media", "human-listener")
    subscribed: asyncio.Future[rtc.Track] = asyncio.get_running_loop().create_future()

    @listener.on("track_subscribed")
    def _on_track(
        track: rtc.Track, _pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO and not subscribed.done():
            subscribed.set_result(track)

    speaker = await join("real-media", "human-speaker")
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("tone", source)
    playing = asyncio.create_task(play_tone(source))
    try:
        await speaker.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        heard = await record(await asyncio.wait_for(subscribed, 15), seconds=1.5)
    finally:
        playing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await playing
        await source.aclose()

    # Past the first half second (codec start-up), what arrives is the tone: loud, at 440 Hz,
    # with nearly all its energy there (Opus in between, so not sample for sample).
    steady = heard[RATE // 2 :].astype(np.float64) / 32768
    rms = float(np.sqrt(np.mean(steady**2)))
    assert rms > 0.2, f"too quiet: rms {rms:.3f} (sent 0.354)"
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady)))) ** 2
    freqs = np.fft.rfftfreq(len(steady), 1 / RATE)
    peak = float(freqs[int(np.argmax(spectrum))])
    assert abs(peak - TONE_HZ) < 3, f"the loudest frequency is {peak:.1f} Hz"
    near = spectrum[np.abs(freqs - TONE_HZ) < 20].sum() / spectrum.sum()
    assert near > 0.95, f"only {near:.0%} of the energy is at the tone"


def hub_of(app: Starlette) -> Hub:
    hub: Hub = app.state.hub
    return hub


async def test_a_cloud_call_makes_its_room_on_the_server_and_ending_it_closes_it(
    client: httpx.AsyncClient,
    lkapi: api.LiveKitAPI,
    livekit_server: RealLiveKit,
    join: JoinRoom,
) -> None:
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
    assert r.status_code == 201, r.text
    call = r.json()["call"]
    lk = call["livekit"]
    name = f"hivecall-{call['id']}"
    assert (lk["room"], lk["url"]) == (name, livekit_server.ws_url)

    (made,) = (await lkapi.room.list_rooms(api.ListRoomsRequest(names=[name]))).rooms
    assert (made.empty_timeout, made.departure_timeout, made.max_participants) == (300, 20, 8)
    assert json.loads(made.metadata) == {"call_id": call["id"]}

    # The dispatch of `hivecall worker`: accepted although no worker is registered. The server
    # keeps it (with no job: it found no worker to offer one to) until the room closes.
    dispatches = await lkapi.agent_dispatch.list_dispatch(name)
    (ours,) = [d for d in dispatches if d.agent_name == "hivecall"]
    assert ours.id.startswith("AD_")
    assert json.loads(ours.metadata) == {
        "hivecall": 1,
        "call_id": call["id"],
        "agent_id": call["agent"]["id"],
        "agent_name": "echo",
    }
    assert list(ours.state.jobs) == []

    # The caller joins with the token the hub minted, and the hub sees them in the room.
    caller = await join(name, "", token=lk["token"])
    left: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @caller.on("disconnected")
    def _on_left(reason: int) -> None:
        if not left.done():
            left.set_result(reason)

    r = await client.get(f"/api/calls/{call['id']}/participants")
    assert r.status_code == 200, r.text
    (person,) = r.json()["participants"]
    assert (person["identity"], person["name"], person["kind"]) == (lk["identity"], "Host", "human")
    # JOINED until the server has its side of the media connection up, then ACTIVE: right after
    # connect() returns it may still say joined.
    assert person["state"] in ("joined", "active")

    r = await client.post(f"/api/calls/{call['id']}/end")
    assert r.status_code == 200, r.text
    assert r.json()["call"]["state"] == "ended"
    assert (await lkapi.room.list_rooms(api.ListRoomsRequest(names=[name]))).rooms == []
    assert await asyncio.wait_for(left, 10) == rtc.DisconnectReason.ROOM_DELETED


async def test_a_wrong_secret_is_reported_as_refused(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """The real server answers a bad signature with a plain-text 401 (not Twirp JSON)."""
    hub = hub_of(app)
    hub.settings = hub.settings.replace(livekit_api_secret="lk-wrong-secret-" + "0" * 24)
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": "cloud"})
    assert r.status_code == 502 and r.json()["error"]["code"] == "livekit_unauthorized"
    assert "lk-wrong-secret" not in r.text


# What the server answers where the stand-in imitates it (issue 17: the stand-in is to match).


async def twirp_error(call: Awaitable[object]) -> tuple[int, str, str]:
    with pytest.raises(api.TwirpError) as caught:
        await call
    return caught.value.status, caught.value.code, caught.value.message


async def test_room_service_answers(lkapi: api.LiveKitAPI, livekit_server: RealLiveKit) -> None:
    made = await lkapi.room.create_room(
        api.CreateRoomRequest(
            name="real-answers", empty_timeout=120, max_participants=8, metadata="first"
        )
    )
    # CreateRoom on an existing room returns it as it is: nothing in the request is applied.
    again = await lkapi.room.create_room(
        api.CreateRoomRequest(
            name="real-answers", empty_timeout=60, max_participants=3, metadata="x"
        )
    )
    assert (again.sid, again.empty_timeout, again.max_participants, again.metadata) == (
        made.sid,
        120,
        8,
        "first",
    )
    # A room nobody joined lists no participants; missing things are 404 with these texts.
    listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room="real-answers"))
    assert list(listed.participants) == []
    nobody = api.RoomParticipantIdentity(room="real-answers", identity="nobody")
    assert await twirp_error(lkapi.room.remove_participant(nobody)) == (
        404,
        "not_found",
        "twirp error unknown: participant does not exist",
    )
    await lkapi.room.delete_room(api.DeleteRoomRequest(room="real-answers"))
    assert await twirp_error(
        lkapi.room.delete_room(api.DeleteRoomRequest(room="real-answers"))
    ) == (404, "not_found", "twirp error unknown: requested room does not exist")

    # A bad signature: 401 in plain text, which livekit-api reads as code "unknown", no text.
    wrong = api.LiveKitAPI(livekit_server.url, livekit_server.api_key, "x" * 40)
    try:
        assert await twirp_error(wrong.room.list_rooms(api.ListRoomsRequest())) == (
            401,
            "unknown",
            "",
        )
    finally:
        await wrong.aclose()
    body = room_pb.ListRoomsRequest().SerializeToString()
    bad = httpx.post(
        f"{livekit_server.url}/twirp/livekit.RoomService/ListRooms",
        content=body,
        headers={"content-type": "application/protobuf", "authorization": "Bearer x.y.z"},
    )
    assert bad.status_code == 401 and bad.headers["content-type"].startswith("text/plain")


async def test_dispatch_answers(lkapi: api.LiveKitAPI) -> None:
    await lkapi.room.create_room(api.CreateRoomRequest(name="real-dispatch"))
    made = await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="hivecall", room="real-dispatch", metadata="m")
    )
    assert made.id.startswith("AD_") and made.state.created_at > 0
    assert list(made.state.jobs) == []
    # A room comes with a dispatch of its own for agent_name "" (workers without a name).
    listed = await lkapi.agent_dispatch.list_dispatch("real-dispatch")
    assert sorted(d.agent_name for d in listed) == ["", "hivecall"]
    deleted = await lkapi.agent_dispatch.delete_dispatch(made.id, "real-dispatch")
    assert deleted.id == made.id
    assert await twirp_error(lkapi.agent_dispatch.delete_dispatch(made.id, "real-dispatch")) == (
        404,
        "not_found",
        "twirp error unknown: dispatch ID not found",
    )
    # A dispatch into a room that does not exist creates it (room.auto_create).
    await lkapi.agent_dispatch.create_dispatch(
        api.CreateAgentDispatchRequest(agent_name="hivecall", room="real-dispatch-fresh")
    )
    rooms = await lkapi.room.list_rooms(api.ListRoomsRequest(names=["real-dispatch-fresh"]))
    assert [(r.name, r.empty_timeout) for r in rooms.rooms] == [("real-dispatch-fresh", 300)]
    for name in ("real-dispatch", "real-dispatch-fresh"):
        await lkapi.room.delete_room(api.DeleteRoomRequest(room=name))


async def test_join_answers(
    livekit_server: RealLiveKit, lkapi: api.LiveKitAPI, join: JoinRoom
) -> None:
    """`/rtc/validate` says only whether the token may join: a full room answers "success"
    there, and the websocket upgrade itself fails with a 500."""
    await lkapi.room.create_room(api.CreateRoomRequest(name="real-full", max_participants=1))
    await join("real-full", "human-1")
    token = livekit_server.token("human-2", "real-full")
    answer = httpx.get(f"{livekit_server.url}/rtc/validate", params={"access_token": token})
    assert (answer.status_code, answer.text) == (200, "success")
    with pytest.raises(rtc.ConnectError, match="500"):
        await join("real-full", "human-2")
    # Agents do not count toward max_participants.
    await join(
        "real-full", "agent-1", token=livekit_server.token("agent-1", "real-full", agent=True)
    )
    people = await lkapi.room.list_participants(api.ListParticipantsRequest(room="real-full"))
    assert sorted(p.identity for p in people.participants) == ["agent-1", "human-1"]
    await lkapi.room.delete_room(api.DeleteRoomRequest(room="real-full"))
