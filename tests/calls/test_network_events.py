"""Network drops are in a call's timeline: `network lost` / `network recovered` lines, reported by
the page (BYOK) or noticed by the hub's own peer (local calls, real WebRTC with an aiortc caller);
a drop that does not recover fails the call with `media_lost`."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aioice.ice
import httpx
import pytest
from av import AudioFrame
from starlette.applications import Starlette

from hivecall.hub import Hub
from hivecall.voice.local.peer import LOST_AFTER_S
from tests.local.caller import Caller

T = TypeVar("T")


def hub_of(app: Starlette) -> Hub:
    hub: Hub = app.state.hub
    return hub


async def start(client: httpx.AsyncClient, mode: str) -> dict[str, Any]:
    r = await client.post("/api/calls", json={"agent_id": "echo", "mode": mode})
    assert r.status_code == 201, r.text
    call: dict[str, Any] = r.json()["call"]
    return call


async def report(client: httpx.AsyncClient, call: dict[str, Any], *events: Any) -> httpx.Response:
    return await client.post(f"/api/calls/{call['id']}/events", json={"events": list(events)})


async def shown(client: httpx.AsyncClient, call: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/api/calls/{call['id']}")).json()
    return body


def phases(view: dict[str, Any]) -> list[str]:
    return [ln["text"] for ln in view["lines"] if ln["kind"] == "phase"]


async def until(check: Callable[[], Any], timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


# -- reported by the page --------------------------------------------------------------------


async def test_the_page_reports_a_drop_and_its_recovery_without_a_phase_change(
    client: httpx.AsyncClient,
) -> None:
    call = await start(client, "byok")
    r = await report(client, call, {"type": "phase", "phase": "talking"})
    assert r.status_code == 200
    r = await report(client, call, {"type": "network", "state": "lost"})
    assert r.status_code == 200 and r.json()["call"]["state"] == "talking"
    r = await report(
        client,
        call,
        {"type": "network", "state": "recovered"},
        {"type": "user", "text": "can you hear me?"},
    )
    assert r.status_code == 200 and r.json()["call"]["state"] == "talking"
    view = await shown(client, call)
    assert [(ln["kind"], ln["text"]) for ln in view["lines"]] == [
        ("phase", "talking"),
        ("phase", "network lost"),
        ("phase", "network recovered"),
        ("user", "can you hear me?"),
    ]
    assert view["call"]["error"] is None


async def test_a_drop_seen_twice_is_said_once(app: Starlette, client: httpx.AsyncClient) -> None:
    # A local call's page and its hub may both see one drop (each sees one direction).
    call = await start(client, "byok")
    await report(client, call, {"type": "phase", "phase": "talking"})
    await report(client, call, {"type": "network", "state": "lost"})
    assert hub_of(app).calls.network_line(call["id"], "lost") is None  # the hub saw it too
    await report(client, call, {"type": "network", "state": "lost"})
    await report(client, call, {"type": "network", "state": "recovered"})
    assert hub_of(app).calls.network_line(call["id"], "recovered") is None
    await report(client, call, {"type": "network", "state": "recovered"})
    await report(client, call, {"type": "network", "state": "lost"})  # a second drop
    assert phases(await shown(client, call)) == [
        "talking",
        "network lost",
        "network recovered",
        "network lost",
    ]


async def test_a_drop_that_does_not_recover_fails_the_call_media_lost(
    client: httpx.AsyncClient,
) -> None:
    call = await start(client, "byok")
    await report(client, call, {"type": "phase", "phase": "talking"})
    r = await report(
        client,
        call,
        {"type": "network", "state": "lost"},
        {
            "type": "phase",
            "phase": "failed",
            "error": {"code": "media_lost", "message": "the connection did not come back"},
        },
    )
    assert r.status_code == 200, r.text
    got = r.json()["call"]
    assert got["state"] == "failed"
    assert got["error"] == {"code": "media_lost", "message": "the connection did not come back"}
    assert phases(await shown(client, call)) == ["talking", "network lost", "failed"]


async def test_an_unknown_network_state_is_refused_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    call = await start(client, "byok")
    for bad in ({"type": "network", "state": "flaky"}, {"type": "network"}):
        r = await report(client, call, {"type": "user", "text": "hello"}, bad)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert (await shown(client, call))["lines"] == []


# -- noticed by the hub (local calls) --------------------------------------------------------


class Mic:
    """Holds the caller's microphone frames back while `paused`: no audio packets leave, as
    when the network drops (the ICE connection itself stays up)."""

    def __init__(self, caller: Caller) -> None:
        assert caller.mic is not None
        self.flowing = asyncio.Event()
        self.flowing.set()
        real = caller.mic.recv

        async def recv() -> AudioFrame:
            await self.flowing.wait()
            return await real()

        setattr(caller.mic, "recv", recv)  # noqa: B010 (the track's recv is what aiortc reads)


def cut(caller: Caller) -> None:
    """The caller's network goes away: its UDP sockets close, without a word to the hub."""
    for transceiver in caller.pc.getTransceivers():
        ice = transceiver.sender.transport.transport
        for protocol in ice._connection._protocols:
            protocol.transport.close()


async def connect(client: httpx.AsyncClient, call: dict[str, Any], caller: Caller) -> None:
    r = await client.post(
        call["local"]["offer_url"],
        content=await caller.offer(),
        headers={"content-type": "application/sdp"},
    )
    assert r.status_code == 201, r.text
    await caller.answered(r.text)

    async def talking() -> bool:
        return bool((await shown(client, call))["call"]["state"] == "talking")

    await until(talking)


async def test_the_hub_notes_when_a_local_callers_audio_stops_and_comes_back(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    call = await start(client, "local")
    caller = Caller()
    mic = Mic(caller)
    try:
        await connect(client, call, caller)
        mic.flowing.clear()

        async def lost() -> bool:
            return "network lost" in phases(await shown(client, call))

        await until(lost)
        assert (await shown(client, call))["call"]["state"] == "talking"
        mic.flowing.set()

        async def recovered() -> bool:
            return "network recovered" in phases(await shown(client, call))

        await until(recovered)
        view = await shown(client, call)
        assert view["call"]["state"] == "talking"
        assert phases(view)[-2:] == ["network lost", "network recovered"]
        assert hub_of(app).local.live == 1
    finally:
        await caller.close()


class Elsewhere:
    """A caller on its own event loop and thread, as a browser is: it goes on sending while
    the hub's loop stands still."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.caller: Caller = self.run(self._make())

    async def _make(self) -> Caller:
        return Caller()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=20)

    async def wait(self, work: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self.loop))

    def close(self) -> None:
        self.run(self.caller.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def test_a_hub_that_stood_still_does_not_take_it_for_a_drop(
    client: httpx.AsyncClient,
) -> None:
    call = await start(client, "local")
    other = Elsewhere()
    try:
        r = await client.post(
            call["local"]["offer_url"],
            content=await other.wait(other.caller.offer()),
            headers={"content-type": "application/sdp"},
        )
        assert r.status_code == 201, r.text
        await other.wait(other.caller.answered(r.text))

        async def talking() -> bool:
            return bool((await shown(client, call))["call"]["state"] == "talking")

        await until(talking)
        await asyncio.sleep(1)  # audio flows
        time.sleep(LOST_AFTER_S + 1)  # the hub's event loop stands still; the caller's does not
        await asyncio.sleep(LOST_AFTER_S)
        view = await shown(client, call)
    finally:
        other.close()
    assert view["call"]["state"] == "talking"
    assert not [p for p in phases(view) if p.startswith("network")]


@pytest.fixture
def quick_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    """ICE consent checks every ~1 s instead of ~5 s: a dead network is given up in seconds."""
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 1.0)


@pytest.mark.usefixtures("quick_consent")
@pytest.mark.parametrize("microphone", [True, False], ids=["microphone", "speaker_only"])
async def test_a_local_call_whose_network_is_gone_fails_media_lost(
    app: Starlette, client: httpx.AsyncClient, microphone: bool
) -> None:
    hub = hub_of(app)
    call = await start(client, "local")
    caller = Caller(microphone=microphone)
    try:
        await connect(client, call, caller)
        cut(caller)

        async def over() -> bool:
            return (await shown(client, call))["call"]["state"] in ("ended", "failed")

        await until(over, timeout=30)
    finally:
        await caller.close()
    view = await shown(client, call)
    assert view["call"]["error"] == {
        "code": "media_lost",
        "message": "the call's audio connection was lost",
    }
    # With audio flowing the hub notices the silence first; speaker-only, only ICE tells.
    expected = ["network lost", "failed"] if microphone else ["failed"]
    assert phases(view)[-len(expected) :] == expected
    assert "ended" not in phases(view)
    assert hub.local.live == 0
