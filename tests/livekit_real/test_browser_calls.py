"""Cloud calls in Chromium against the real livekit-server: the dashboard's call modal and the
guest page join the room the hub made, with the tokens it minted, and people hear each other.

Each person is a Chromium of their own (the fake microphone's file is a browser flag), with
tests/browser/pages/room_audio_tap.js recording what the page sends and hears on one audio
clock (tests/livekit_real/browser_audio.py); Whisper (hivecall.speech) says what was heard.
The microphone is held until the test opens it, so nobody speaks before the others listen.

What Chromium needs here: only its `--allow-loopback-in-peer-connection` (tests/browser's flags).
Unlike libwebrtc's Rust SDK it gathers loopback candidates, so the people-only test runs without
`client_network`'s veth; the tests with the worker have it (the worker needs it) and Chromium
connects the same way. The hub hands the page `ws://` for LIVEKIT_URL's `http://`.

The worker tests use stack.py's module stack (hub, Realtime stand-in, `hivecall worker`) with the
stand-in as a voice front end (`relay_script`, Whisper hearing, Piper speaking). They report the
answer latency (end of the page's speech -> first audible answer sample in the page) in the
terminal summary; nothing asserts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from livekit import api
from playwright.async_api import TimeoutError as PlaywrightTimeout

from hivecall.auth import ALL_SCOPES, SESSION_COOKIE, SESSION_TTL
from tests.browser.conftest import (  # noqa: F401  (fixtures used by name)
    CHROMIUM,
    _browser_ready,
    chromium_flags,
    realtime_standin,
    recorded_tab,
)
from tests.browser.conftest import live_hub as live_hub
from tests.live import LiveHub, owner
from tests.livekit_real.browser_audio import (
    Take,
    answer_latency,
    install_tap,
    open_mic,
    take,
    wait_for_label,
    wait_for_quiet,
    wait_for_sound,
)
from tests.livekit_real.conftest import TIMINGS
from tests.livekit_real.server import RealLiveKit
from tests.livekit_real.stack import (  # noqa: F401  (fixtures used by name)
    ANSWERS,
    CloudStack,
    cloud_stack,
    cloud_stack_module,
    wait_for,
)
from tests.local.speech import overlap, said, silence, write_wav
from tests.standins.realtime import relay_script

if TYPE_CHECKING:
    from playwright.async_api import Page, Playwright

T = 20_000  # ms: generous waits for a loaded 2-core machine
LEAD_S = 2.0  # silence before the words: the far end subscribes meanwhile
HOST_SAYS = "The orange cat sleeps on the warm kitchen floor."
GUEST_SAYS = "Green boats sailed across the quiet lake at dawn."


@pytest.fixture
def live_hub_settings(livekit_server: RealLiveKit) -> dict[str, Any]:
    return {
        "cloud_calls": True,
        "livekit_url": livekit_server.url,
        "livekit_api_key": livekit_server.api_key,
        "livekit_api_secret": livekit_server.api_secret,
    }


def speech_wav(path: Path, text: str, *, lead_s: float = LEAD_S, tail_s: float = 1.0) -> Path:
    """A fake-microphone file: `lead_s` of silence, `text` spoken (Piper), `tail_s` of silence."""
    return write_wav(path, silence(lead_s) + said(text) + silence(tail_s))


def wav_seconds(path: Path) -> float:
    return (path.stat().st_size - 44) / 2 / 16000


class People:
    """Chromiums with one tab each: `await people.open(name, wav)` -> the tab, its microphone
    playing `wav` once it is opened (browser_audio.open_mic), the tap recording."""

    def __init__(self, pw: Playwright, console: list[str], test_name: str) -> None:
        self.pw = pw
        self.console = console
        self.test_name = test_name
        self.stack = contextlib.AsyncExitStack()

    async def open(self, name: str, wav: Path) -> Page:
        browser = await self.pw.chromium.launch(
            executable_path=str(CHROMIUM), args=chromium_flags("fake", wav)
        )
        self.stack.push_async_callback(browser.close)
        context = await browser.new_context()
        # Raw microphone audio (no echo cancellation or gain control): deterministic input.
        await context.add_init_script("localStorage.setItem('hivecall.audio', 'raw');")
        await install_tap(context, hold_mic=True)
        lines: list[str] = []
        self.stack.callback(lambda: self.console.extend(f"[{name}] {line}" for line in lines))
        return await self.stack.enter_async_context(
            recorded_tab(context, lines, f"{self.test_name}-{name}")
        )


@pytest.fixture
async def people(request: pytest.FixtureRequest) -> AsyncIterator[People]:
    from playwright.async_api import async_playwright

    console: list[str] = []
    async with async_playwright() as pw:
        crowd = People(pw, console, request.node.name)
        try:
            yield crowd
        finally:
            await crowd.stack.aclose()


async def sign_in(page: Page, hub: LiveHub) -> None:
    """The owner's session cookie, as the login URL would set it. Not the login URL itself: a
    module's hub (stack.py) outlives the test's start, where the leak scanner turns on every
    logger, and its access log would then record the owner token in that URL's query."""
    value, _ = await hub.run(
        lambda h: h.tokens.create(
            kind="session", scopes=ALL_SCOPES, name="browser", ttl=SESSION_TTL
        )
    )
    await page.context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": value,
                "url": hub.url,
                "httpOnly": True,
                "sameSite": "Strict",
            }
        ]
    )


async def start_room_call(page: Page, hub: LiveHub, agent: str = "echo") -> dict[str, Any]:
    """The owner opens the dashboard and starts a cloud call ("Room") to `agent`: the call."""
    await sign_in(page, hub)
    await page.goto(f"{hub.url}/")
    await page.wait_for_selector("body[data-ready='1']", timeout=T)
    async with page.expect_response(
        lambda r: r.url.endswith("/api/calls") and r.request.method == "POST"
    ) as info:
        await page.click(f"button.room[data-agent='{agent}']")
    started: dict[str, Any] = (await (await info.value).json())["call"]
    await page.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
    return started


async def join_as_guest(page: Page, hub: LiveHub, call_id: str, name: str) -> dict[str, Any]:
    """An invite link, opened on the guest page: the guest's credentials once in the room."""
    r = owner(hub, "POST", f"/api/calls/{call_id}/invites", json={})
    assert r.status_code == 201, r.text
    async with page.expect_response(lambda r: r.url.endswith("/api/join")) as info:
        await page.goto(f"{hub.url}/join/{r.json()['invite']['code']}")
        await page.wait_for_selector("body[data-screen='name']", timeout=T)
        await page.fill("#guest-name", name)
        await page.click("#join-submit")
    creds: dict[str, Any] = (await (await info.value).json())["livekit"]
    await page.wait_for_selector("#room-phase[data-phase='talking']", timeout=T)
    return creds


async def heard(page: Page, label: str, seconds: float) -> Take:
    """`label`'s recording once it is `seconds` long (or the wait runs out)."""
    await page.wait_for_function(
        "([l, s]) => window.__tap.seconds(l) >= s",
        arg=[label, seconds],
        timeout=T + seconds * 1000,
        polling=500,
    )
    return await take(page, label)


async def rooms_named(lkapi: api.LiveKitAPI, name: str) -> list[Any]:
    return list((await lkapi.room.list_rooms(api.ListRoomsRequest(names=[name]))).rooms)


# -- no worker: people only -------------------------------------------------------------------


async def test_two_people_hear_each_other_and_the_host_ends_the_call(
    people: People, live_hub: LiveHub, lkapi: api.LiveKitAPI, tmp_path: Path
) -> None:
    host_wav = speech_wav(tmp_path / "host.wav", HOST_SAYS)
    guest_wav = speech_wav(tmp_path / "guest.wav", GUEST_SAYS)
    host, guest = await asyncio.gather(
        people.open("host", host_wav), people.open("guest", guest_wav)
    )

    call = await start_room_call(host, live_hub)
    creds = call["livekit"]
    # The hub hands the browser a websocket URL for the server's plain HTTP one.
    assert creds["url"].startswith("ws://127.0.0.1:")
    (room,) = await rooms_named(lkapi, creds["room"])
    guest_creds = await join_as_guest(guest, live_hub, call["id"], "Ana")

    # Each page lists the other; then both start speaking.
    await host.wait_for_selector(
        f"#call-modal li.participant[data-identity='{guest_creds['identity']}']", timeout=T
    )
    await guest.wait_for_selector(
        f"#room-panel li.participant[data-identity='{creds['identity']}']", timeout=T
    )
    await asyncio.gather(open_mic(host), open_mic(guest))
    await host.wait_for_selector("#call-mic[data-mic='live']", timeout=T)

    host_hears, guest_hears = await asyncio.gather(
        heard(host, f"remote:{guest_creds['identity']}", wav_seconds(guest_wav)),
        heard(guest, f"remote:{creds['identity']}", wav_seconds(host_wav)),
    )
    host_text, guest_text = host_hears.text(), guest_hears.text()
    assert overlap(host_text, GUEST_SAYS) >= 0.6, host_text
    assert overlap(guest_text, HOST_SAYS) >= 0.6, guest_text
    # The server saw both, each with one published microphone track.
    listed = await lkapi.room.list_participants(api.ListParticipantsRequest(room=creds["room"]))
    published = {p.identity: [t.type for t in p.tracks] for p in listed.participants}
    assert published == {
        creds["identity"]: [api.TrackType.AUDIO],
        guest_creds["identity"]: [api.TrackType.AUDIO],
    }

    # The host ends the call: the room is deleted on the server and the guest is told.
    await host.click("#call-end")
    await host.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    for _ in range(100):
        if not await rooms_named(lkapi, creds["room"]):
            break
        await asyncio.sleep(0.1)
    assert await rooms_named(lkapi, creds["room"]) == [], room.sid
    await guest.wait_for_selector("body[data-screen='done']", timeout=T)
    assert await guest.text_content("#done-title") == "The call has ended"
    assert await guest.is_hidden("#rejoin")


# -- with the worker: agents in the room -------------------------------------------------------

GREETING = "Hello, this is your agent. What would you like done?"
ASK_OSCAR = "Oscar, is the build green?"
# The second agent: one of stack.py's names Whisper tiny.en mishears in Piper's voice ("Victor"
# comes out as "Vicker", "Vaker": then nobody is named and the floor's holder answers), so this
# module adds one whose name it hears.
SECOND = "robin"
SECOND_ANSWER = "Robin here. The deploy finished and the site is up."
ASK_SECOND = "Robin, did the deploy finish?"


def voice_front_end(stack: CloudStack) -> None:
    """The Realtime stand-in hears (Whisper), relays what it heard to the agent's tool, and says
    the tool's output (Piper): the agent's runtime answers through the room."""
    stack.realtime.clear()
    stack.realtime.script = relay_script(opening=GREETING)
    stack.realtime.hears = stack.realtime.speaks = True


async def agent_joined(page: Page, identity: str) -> None:
    await page.wait_for_selector(
        f"li.participant[data-identity='{identity}'][data-kind='agent']", timeout=30_000
    )


async def captions(page: Page) -> list[tuple[str, str, bool]]:
    found = await page.evaluate(
        """() => [...document.querySelectorAll("ol.captions li")].map((li) =>
             [li.dataset.kind, li.textContent, li.dataset.final === "1"])"""
    )
    return [(k, t, f) for k, t, f in found]


async def done_turns(stack: CloudStack, agent: str, call_id: str) -> list[dict[str, Any]]:
    return [t for t in await stack.turns(agent, call_id=call_id) if t["status"] == "done"]


async def test_a_person_calls_an_agent_from_the_dashboard_and_hears_its_answer(
    people: People,
    cloud_stack: CloudStack,  # noqa: F811
    lkapi: api.LiveKitAPI,
    tmp_path: Path,
) -> None:
    stack = cloud_stack
    voice_front_end(stack)
    wav = speech_wav(tmp_path / "ask.wav", ASK_OSCAR, lead_s=0.5, tail_s=2.0)
    host = await people.open("host", wav)
    call = await start_room_call(host, stack.hub, "oscar")
    agent = f"remote:{(await stack_agent_identity(stack, 'oscar'))}"
    identity = agent.removeprefix("remote:")
    await agent_joined(host, identity)

    # The worker's greeting plays in the page; the person speaks once it is over.
    await wait_for_label(host, agent)
    await wait_for_quiet(host, agent)
    greeting = (await take(host, agent)).text()
    assert overlap(greeting, GREETING) >= 0.6, greeting
    await open_mic(host)

    # The runtime got the request, and its answer comes back as speech and as a caption.
    (turn,) = await wait_for("oscar's turn", lambda: done_turns(stack, "oscar", call["id"]), 40)
    assert overlap(turn["message"], ASK_OSCAR) >= 0.6, turn
    spoken_end = (await take(host, "mic")).last_sound()
    assert spoken_end is not None
    await wait_for_sound(host, agent, after_s=spoken_end)
    await wait_for_quiet(host, agent)
    mic, heard = await take(host, "mic"), await take(host, agent)
    answer = heard.since(spoken_end).text()
    assert overlap(answer, ANSWERS["oscar"]) >= 0.6, answer
    latency = answer_latency(mic, heard)
    TIMINGS.append(f"browser: end of speech -> first answer sample in the page: {latency:.2f} s")
    print(f"\nanswer latency (browser, end of speech -> first audible answer): {latency:.2f} s")

    await host.wait_for_function(
        "(t) => [...document.querySelectorAll('#call-modal ol.captions li')]"
        ".some((li) => li.dataset.kind === 'agent' && li.dataset.final === '1'"
        " && li.textContent.includes(t))",
        arg=ANSWERS["oscar"],
        timeout=T,
    )
    shown = await captions(host)
    said_lines = [t for k, t, _f in shown if k == "human" and t.startswith("You: ")]
    assert any(overlap(t, ASK_OSCAR) >= 0.6 for t in said_lines), shown

    # The host ends the call: the room goes and the worker's job ends.
    await host.click("#call-end")
    await host.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    await wait_for("the room to go", lambda: _gone(lkapi, call["livekit"]["room"]))
    await wait_for("the job to end", lambda: stack.active_jobs() == 0, 30)


async def _gone(lkapi: api.LiveKitAPI, room: str) -> bool:
    return not await rooms_named(lkapi, room)


async def stack_agent_identity(stack: CloudStack, name: str) -> str:
    from tests.livekit_real.stack import agent_identity_of

    return agent_identity_of(await stack.agent_id(name))


async def greeted(page: Page, label: str, *, within_ms: float = 6_000) -> None:
    """Until `label`'s greeting (if it says one within `within_ms`) is over."""
    with contextlib.suppress(PlaywrightTimeout):
        await wait_for_sound(page, label, timeout_ms=within_ms)
        await wait_for_quiet(page, label)


async def test_two_people_and_an_agent_hear_each_other(
    people: People,
    cloud_stack: CloudStack,  # noqa: F811
    tmp_path: Path,
) -> None:
    stack = cloud_stack
    voice_front_end(stack)
    host_wav = speech_wav(tmp_path / "host.wav", ASK_OSCAR, lead_s=0.5, tail_s=1.0)
    guest_wav = speech_wav(tmp_path / "guest.wav", GUEST_SAYS, lead_s=0.5, tail_s=1.0)
    host, guest = await asyncio.gather(
        people.open("host", host_wav), people.open("guest", guest_wav)
    )
    call = await start_room_call(host, stack.hub, "oscar")
    oscar = await stack_agent_identity(stack, "oscar")
    guest_creds = await join_as_guest(guest, stack.hub, call["id"], "Ana")
    await asyncio.gather(agent_joined(host, oscar), agent_joined(guest, oscar))
    await greeted(host, f"remote:{oscar}")

    # The host asks oscar: the guest hears the host, and both hear oscar's answer.
    await open_mic(host)
    await wait_for("oscar's turn", lambda: done_turns(stack, "oscar", call["id"]), 40)
    spoken_end = (await take(host, "mic")).last_sound()
    assert spoken_end is not None
    await wait_for_sound(host, f"remote:{oscar}", after_s=spoken_end)
    await asyncio.gather(
        wait_for_quiet(host, f"remote:{oscar}"), wait_for_quiet(guest, f"remote:{oscar}")
    )
    guest_heard_host = (await take(guest, f"remote:{call['livekit']['identity']}")).text()
    assert overlap(guest_heard_host, ASK_OSCAR) >= 0.6, guest_heard_host
    host_heard_oscar = (await take(host, f"remote:{oscar}")).since(spoken_end).text()
    assert overlap(host_heard_oscar, ANSWERS["oscar"]) >= 0.6, host_heard_oscar
    guest_heard_oscar = (await take(guest, f"remote:{oscar}")).text()
    assert overlap(guest_heard_oscar, ANSWERS["oscar"]) >= 0.6, guest_heard_oscar

    # Then the guest speaks, and the host hears the guest.
    await open_mic(guest)
    label = f"remote:{guest_creds['identity']}"
    await wait_for_sound(host, label)
    await wait_for_quiet(host, label, seconds=1.0)
    host_heard_guest = (await take(host, label)).text()
    assert overlap(host_heard_guest, GUEST_SAYS) >= 0.6, host_heard_guest
    await stack.end_call(call["id"])
    await guest.wait_for_selector("body[data-screen='done']", timeout=T)


async def add_second_agent(stack: CloudStack) -> None:
    """`robin`, a command agent that answers SECOND_ANSWER at once (as stack.py's INSTANT)."""
    if (await stack.request("GET", f"/api/agents/{SECOND}")).status_code == 200:
        return
    code = f"print({SECOND_ANSWER!r})"
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)} {{message}}"
    r = await stack.request(
        "POST",
        "/api/agents",
        json={"name": SECOND, "command": command, "workspace": str(stack.workspace)},
    )
    assert r.status_code == 201, r.text


async def test_of_two_agents_only_the_one_named_answers(
    people: People,
    cloud_stack: CloudStack,  # noqa: F811
    tmp_path: Path,
) -> None:
    stack = cloud_stack
    voice_front_end(stack)
    await add_second_agent(stack)
    host = await people.open("host", speech_wav(tmp_path / "ask.wav", ASK_SECOND, lead_s=0.5))
    call = await start_room_call(host, stack.hub, "oscar")
    oscar = await stack_agent_identity(stack, "oscar")
    second = await stack_agent_identity(stack, SECOND)
    await agent_joined(host, oscar)
    await greeted(host, f"remote:{oscar}")

    # The host adds the second agent from the modal's room panel.
    await host.select_option("#call-modal [data-role='agent-pick']", await stack.agent_id(SECOND))
    await host.click("#call-modal [data-role='add-agent']")
    await agent_joined(host, second)
    await wait_for_label(host, f"remote:{second}")
    await greeted(host, f"remote:{second}")
    await greeted(host, f"remote:{oscar}", within_ms=1_000)

    await open_mic(host)
    (turn,) = await wait_for(
        "the second agent's turn", lambda: done_turns(stack, SECOND, call["id"]), 40
    )
    assert overlap(turn["message"], ASK_SECOND) >= 0.6, turn
    spoken_end = (await take(host, "mic")).last_sound()
    assert spoken_end is not None
    await wait_for_sound(host, f"remote:{second}", after_s=spoken_end)
    await wait_for_quiet(host, f"remote:{second}")
    answer = (await take(host, f"remote:{second}")).since(spoken_end).text()
    assert overlap(answer, SECOND_ANSWER) >= 0.6, answer
    # oscar kept quiet: no turn of its runtime, no sound on its track since the question.
    assert await done_turns(stack, "oscar", call["id"]) == []
    assert (await take(host, f"remote:{oscar}")).first_sound(after_s=spoken_end) is None
    await stack.end_call(call["id"])
