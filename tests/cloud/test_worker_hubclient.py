"""The worker's hub client against the real hub: the claim, the call token's one call, errors."""

from __future__ import annotations

import dataclasses
import logging
import socket

import httpx
import pytest
from livekit import api

from hivecall.calls.events import LineEvent, line_event, phase_event
from hivecall.cloud.hubclient import Claim, ClaimedAgent, HubClient, HubError
from hivecall.settings import Settings
from tests.cloud.worker_fixtures import (  # noqa: F401 (fixtures)
    agent_id,
    call_record,
    hub_client,
    live_hub,
    owner,
    realtime,
    start_cloud_call,
    worker_settings,
)
from tests.keys import LIVEKIT_API_KEY, LIVEKIT_API_SECRET
from tests.live import LiveHub

ECHO_SAYS = "No runtime is configured for echo yet, so I can only tell you what I heard: "
HELPER_SAYS = "No runtime is configured for helper yet, so I can only tell you what I heard: "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_the_claim_chain_runs_a_turn_in_the_call_and_nothing_else(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
    live_hub: LiveHub,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    call = await start_cloud_call(owner)
    other = await start_cloud_call(owner)

    # The worker's own proof: a 60 s LiveKit token, identity hivecall-worker, the agent grant.
    claims = api.TokenVerifier(LIVEKIT_API_KEY, LIVEKIT_API_SECRET).verify(hub_client.worker_jwt())
    assert claims.identity == "hivecall-worker"
    assert claims.video is not None and claims.video.agent and not claims.video.room_join

    claim = await hub_client.claim(call["id"], call["agent"]["id"], "AJ_chain")
    assert hub_client.claimed == claim
    assert (claim.call_id, claim.room) == (call["id"], call["livekit"]["room"])
    assert (claim.agent.id, claim.agent.name, claim.agent.voice) == (
        call["agent"]["id"],
        "echo",
        "marin",
    )
    assert "ask_computer_agent" in claim.agent.instructions and "echo" in claim.agent.greeting
    assert claim.agents == ("echo",)

    # ask: the bridge runs the turn on the call's agent, recorded on the call.
    assert (await hub_client.ask("what changed?")).text == ECHO_SAYS + "what changed?"
    await hub_client.report(
        [
            phase_event("talking"),
            LineEvent(type="user", text="what changed?", speaker="Sam"),
            LineEvent(type="agent", text="   ", speaker="echo"),  # dropped, not refused
            LineEvent(type="agent", text="Two files.", speaker="echo"),
        ]
    )
    shown = await call_record(owner, call["id"])
    assert shown["call"]["state"] == "talking"
    assert [(t["message"], t["status"]) for t in shown["turns"]] == [("what changed?", "done")]
    lines = [(ln["kind"], ln["speaker"], ln["text"]) for ln in shown["lines"]]
    assert ("tool", "", "what changed?") in lines
    assert ("user", "Sam", "what changed?") in lines
    assert ("agent", "echo", "Two files.") in lines

    # The token cannot list agents, start calls, or see the hub's other business...
    async with httpx.AsyncClient(
        base_url=live_hub.url, headers={"authorization": f"Bearer {claim.token}"}
    ) as as_worker:
        for method, path, body in (
            ("GET", "/api/agents", None),
            ("POST", "/api/calls", {"agent_id": call["agent"]["id"], "mode": "cloud"}),
            ("POST", "/api/phone", {"agent_id": call["agent"]["id"], "message": "hi"}),
            ("GET", "/api/turns", None),
            ("GET", "/api/settings", None),
        ):
            r = await as_worker.request(method, path, json=body)
            assert r.status_code == 403, (path, r.text)
    # ...nor relay into another call, or report there.
    hub_client.use(dataclasses.replace(claim, call_id=other["id"]))
    said = (await hub_client.ask("delete everything")).text
    assert said.startswith("I could not reach the computer agent: ")
    with pytest.raises(HubError) as caught:
        await hub_client.report([LineEvent(type="user", text="hello")])
    assert (caught.value.status, caught.value.code) == (404, "call_not_found")
    assert (await call_record(owner, other["id"]))["turns"] == []

    # Neither the call token nor the LiveKit secret was logged.
    assert claim.token not in caplog.text and LIVEKIT_API_SECRET not in caplog.text


async def test_the_hub_refuses_bad_claims_with_its_error(
    owner: httpx.AsyncClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
) -> None:
    call = await start_cloud_call(owner)
    stranger = worker_settings.replace(livekit_api_secret="lk-another-secret-000000000000000000")
    async with HubClient.from_settings(stranger) as client:
        with pytest.raises(HubError) as caught:
            await client.claim(call["id"], call["agent"]["id"], "AJ_x")
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert not caught.value.retryable
    assert "lk-another-secret" not in caught.value.message

    async with HubClient.from_settings(worker_settings) as client:
        with pytest.raises(HubError) as caught:
            await client.claim(call["id"], "not-dispatched", "AJ_x")
        assert (caught.value.status, caught.value.code) == (404, "call_not_found")
        assert (await owner.post(f"/api/calls/{call['id']}/end")).status_code == 200
        with pytest.raises(HubError) as caught:
            await client.claim(call["id"], call["agent"]["id"], "AJ_x")
        assert (caught.value.status, caught.value.code) == (409, "call_finished")
        assert client.claimed is None
        # Unclaimed, the client has no call to act for.
        with pytest.raises(HubError) as caught:
            await client.report([phase_event("talking")])
        assert caught.value.code == "not_claimed"


async def test_an_unreachable_hub_is_a_retryable_error_and_still_something_to_say() -> None:
    client = HubClient(
        base_url=f"http://127.0.0.1:{free_port()}",
        livekit_api_key=LIVEKIT_API_KEY,
        livekit_api_secret=LIVEKIT_API_SECRET,
        timeout=2,
    )
    async with client:
        with pytest.raises(HubError) as caught:
            await client.claim("call_x", "agent_x", "AJ_x")
        assert caught.value.code == "hub_unreachable" and caught.value.retryable
        assert client.base_url in caught.value.message
        client.use(
            Claim(
                token="hcw_not-a-real-token",
                call_id="call_x",
                room="hivecall-call_x",
                agent=_agent(),
                agents=("echo",),
            )
        )
        said = (await client.ask("status?")).text
        assert said.startswith("I could not reach the computer agent: cannot reach the hub")


async def test_reports_go_in_batches_and_long_lines_are_cut(
    owner: httpx.AsyncClient,  # noqa: F811
    hub_client: HubClient,  # noqa: F811
) -> None:
    call = await start_cloud_call(owner)
    await hub_client.claim(call["id"], call["agent"]["id"], "AJ_batch")
    await hub_client.report(
        [LineEvent(type="user", text=f"line {i}", speaker="Sam") for i in range(120)]
    )
    cut = line_event("agent", "x" * 5000, "echo")
    assert cut is not None and line_event("agent", " \n ", "echo") is None
    await hub_client.report([cut])
    shown = await call_record(owner, call["id"])
    said = [ln["text"] for ln in shown["lines"] if ln["kind"] == "user"]
    assert said == [f"line {i}" for i in range(120)]
    (long,) = [ln["text"] for ln in shown["lines"] if ln["kind"] == "agent"]
    assert len(long) == 4000 and long.endswith("…")


async def test_errors_in_other_shapes_still_raise_hub_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/cloud/claim":
            return httpx.Response(502, text="<html>bad gateway</html>")
        return httpx.Response(200, json={"ok": True, "text": ""})

    client = HubClient(
        base_url="http://127.0.0.1:8765",
        livekit_api_key=LIVEKIT_API_KEY,
        livekit_api_secret=LIVEKIT_API_SECRET,
        transport=httpx.MockTransport(answer),
    )
    async with client:
        with pytest.raises(HubError) as caught:
            await client.claim("call_x", "agent_x", "AJ_x")
        assert (caught.value.status, caught.value.code) == (502, "hub_error")
        assert caught.value.message == "the hub answered HTTP 502" and caught.value.retryable
        client.use(
            Claim(token="hcw_x", call_id="call_x", room="r", agent=_agent(), agents=("echo",))
        )
        assert (await client.ask("hello?")).text == "The computer agent gave no answer."


def _agent() -> ClaimedAgent:
    return ClaimedAgent(id="a1", name="echo", voice="marin", instructions="", greeting="")


async def test_an_added_agent_relays_its_turns_into_the_same_call(
    owner: httpx.AsyncClient,  # noqa: F811
    worker_settings: Settings,  # noqa: F811
) -> None:
    """A second agent in the room (POST /api/calls/{id}/agents) claims its own job and its
    tool turns run on its own runtime, in the same call."""
    call = await start_cloud_call(owner)
    helper = await agent_id(owner, "helper")
    r = await owner.post(f"/api/calls/{call['id']}/agents", json={"agent_id": helper})
    assert r.status_code == 201, r.text
    async with HubClient.from_settings(worker_settings) as first:
        await first.claim(call["id"], call["agent"]["id"], "AJ_first")
        async with HubClient.from_settings(worker_settings) as second:
            claim = await second.claim(call["id"], helper, "AJ_second")
            assert claim.agent.name == "helper" and claim.agent.voice != "marin"
            assert claim.agents == ("echo", "helper")
            said = (await second.ask("what is left?")).text
            assert said == HELPER_SAYS + "what is left?", said
    shown = await call_record(owner, call["id"])
    assert [(t["agent_id"], t["message"]) for t in shown["turns"]] == [(helper, "what is left?")]
