"""The participants' `/rtc` endpoint: joins are checked, recorded and refused (no SFU here).

Driven by the real Rust-backed Python client (`rtc.Room.connect`, the same code an agent job's
`ctx.connect()` runs), and by raw HTTP for the `validate` probe a browser client makes.
"""

from __future__ import annotations

import datetime
import time

import httpx
import jwt
import pytest
from livekit import api, rtc

from tests.livekit_standin.rtc import NO_SFU
from tests.livekit_standin.server import AGENT, LiveKitStandin, running_standin

OTHER_SECRET = "not-the-standin-secret-0123456789abcdefghijkl"


def human_token(standin: LiveKitStandin, room: str, *, secret: str | None = None) -> str:
    """A participant token as the hub mints one (contract: join, publish, subscribe, data)."""
    return (
        api.AccessToken(standin.api_key, secret or standin.api_secret)
        .with_identity("human-0a1b2c3d")
        .with_name("Ann")
        .with_attributes({"hivecall.kind": "human"})
        .with_grants(
            api.VideoGrants(
                room_join=True,
                room=room,
                can_publish=True,
                can_subscribe=True,
                can_publish_data=True,
            )
        )
        .with_ttl(datetime.timedelta(minutes=15))
        .to_jwt()
    )


async def test_a_join_is_recorded_then_refused(livekit_standin: LiveKitStandin) -> None:
    livekit_standin.add_room("hivecall-call_1", max_participants=8)
    room = rtc.Room()
    started = time.monotonic()
    with pytest.raises(rtc.ConnectError, match="403 Forbidden - no SFU here"):
        await room.connect(livekit_standin.ws_url, human_token(livekit_standin, "hivecall-call_1"))
    assert time.monotonic() - started < 3

    # One websocket attempt (a 403 is not retried) and the client's validate probe.
    attempt, probe = livekit_standin.rtc_attempts
    assert (attempt.path, attempt.websocket, attempt.status) == ("/rtc/v1", True, 403)
    assert (probe.path, probe.websocket, probe.status) == ("/rtc/v1/validate", False, 403)
    assert attempt.reason == NO_SFU
    assert attempt.token_valid
    assert (attempt.room, attempt.identity, attempt.name) == (
        "hivecall-call_1",
        "human-0a1b2c3d",
        "Ann",
    )
    assert attempt.attributes == {"hivecall.kind": "human"}
    assert attempt.grants is not None
    assert (attempt.grants.room_join, attempt.grants.can_publish_data) == (True, True)
    assert "access_token" not in attempt.query
    assert livekit_standin.participants("hivecall-call_1") == []


async def test_a_bad_token_is_refused_and_recorded(livekit_standin: LiveKitStandin) -> None:
    livekit_standin.add_room("r")
    with pytest.raises(rtc.ConnectError, match="401"):
        await rtc.Room().connect(
            livekit_standin.ws_url, human_token(livekit_standin, "r", secret=OTHER_SECRET)
        )
    attempt = livekit_standin.rtc_attempts[0]
    assert (attempt.status, attempt.token_valid, attempt.identity) == (401, False, "")
    assert attempt.reason.startswith("invalid token: InvalidSignatureError")


def validate(
    standin: LiveKitStandin, token: str | None, path: str = "/rtc/v1/validate"
) -> httpx.Response:
    params = {} if token is None else {"access_token": token}
    return httpx.get(f"{standin.url}{path}", params=params, headers={"origin": "http://hub.test"})


def test_validate_answers_like_livekit(livekit_standin: LiveKitStandin) -> None:
    livekit_standin.add_room("r", max_participants=1)
    joiner = human_token(livekit_standin, "r")

    ok = validate(livekit_standin, joiner, "/rtc/validate")
    assert (ok.status_code, ok.text) == (403, NO_SFU)
    # The browser reads the answer from another origin.
    assert ok.headers["access-control-allow-origin"] == "*"

    assert (validate(livekit_standin, None).status_code, validate(livekit_standin, None).text) == (
        401,
        "no permissions to access the room",
    )
    admin = livekit_standin.token("someone", grants=api.VideoGrants(room_admin=True, room="r"))
    assert validate(livekit_standin, admin).text == "permissions denied"
    # AccessToken refuses to mint a roomJoin token without identity: sign one by hand.
    nobody = jwt.encode(
        {
            "iss": livekit_standin.api_key,
            "exp": int(time.time()) + 60,
            "video": {"roomJoin": True, "room": "r"},
        },
        livekit_standin.api_secret,
        algorithm="HS256",
    )
    anonymous = validate(livekit_standin, nobody)
    assert (anonymous.status_code, anonymous.text) == (400, "identity cannot be empty")

    # A full room (agents not counted) fails the join as livekit-server does: 500.
    livekit_standin.join("r", "human-other")
    livekit_standin.join("r", "agent-a1", kind=AGENT)
    full = validate(livekit_standin, joiner)
    assert (full.status_code, full.text) == (500, "room has exceeded its max participants")

    # Plain GETs of the websocket paths are 404, as on livekit-server.
    assert httpx.get(f"{livekit_standin.url}/rtc").status_code == 404


def test_without_auto_create_the_room_must_exist() -> None:
    with running_standin(auto_create=False) as standin:
        response = validate(standin, human_token(standin, "nowhere"))
        assert (response.status_code, response.text) == (404, "requested room does not exist")
        # livekit-client reads exactly this text as "not allowed" (and stops retrying).
        assert standin.rooms == {}


def test_the_refusal_status_is_configurable() -> None:
    with running_standin(rtc_refusal_status=503) as standin:
        response = validate(standin, human_token(standin, "r"))
        assert (response.status_code, response.text) == (503, NO_SFU)
