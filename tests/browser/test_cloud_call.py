"""Cloud calls in the browser: cloud.js (the LiveKit room's model), cloudpanel.js (its panel),
the call modal's room panel and the guest page.

There is no LiveKit SFU here, so the room logic runs twice:
- against a fake livekit-client module (pages/cloud_fake_livekit.js) with the real client's names
  and call shapes (`test_the_fake_matches_the_vendored_client` checks them against the bundle):
  participants from room events, who is speaking, caption assembly from text streams and legacy
  transcriptions, remote audio, mute, removal, a refused join and its retry, and the owner's
  controls (remove, invite, add agent, end) against a recording fake API;
- against the real hub and the LiveKit stand-in (tests/livekit_standin): the dashboard starts a
  cloud call, the vendored client loads from the hub, opens the stand-in's /rtc with the token the
  hub minted, is refused (no SFU) and the modal says it could not join, with Retry and End call;
  an invite link opens the guest page, which posts /api/join and tries the room the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import ARTIFACTS, PAGES, StaticSite, recorded_tab
from tests.keys import LIVEKIT_API_KEY, LIVEKIT_API_SECRET
from tests.live import LiveHub, owner
from tests.livekit_standin.records import RtcAttempt
from tests.livekit_standin.server import LiveKitStandin

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

T = 15_000  # ms: generous waits for a loaded 2-core CI machine
STATIC = Path(__file__).parents[2] / "src" / "hivecall" / "web" / "static"
BUNDLE = STATIC / "vendor" / "livekit-client.umd.js"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJodW1hbi0wMDAxIn0.c2VjcmV0LXNpZ25hdHVyZQ"


HARNESS_HTML = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<link rel="stylesheet" href="/static/hub.css"><link rel="icon" href="data:,"></head>
<body><main><section id="box"></section></main>
<script type="module" src="/harness.js"></script></body></html>"""


def serve_front_end(site: StaticSite, *, bundle: bool = False) -> str:
    """The hub's static files (from the source tree), the fake and the harness; its URL."""
    for path in STATIC.glob("*"):
        if path.suffix in (".js", ".css", ".html"):
            kind = {".js": "text/javascript", ".css": "text/css"}.get(path.suffix, "text/html")
            site.add(f"/static/{path.name}", path.read_text(), kind)
    if bundle:
        site.add(f"/static/vendor/{BUNDLE.name}", BUNDLE.read_text(), "text/javascript")
    site.add("/fake-livekit.js", (PAGES / "cloud_fake_livekit.js").read_text(), "text/javascript")
    site.add("/harness.js", (PAGES / "cloud_harness.js").read_text(), "text/javascript")
    return site.add("/harness.html", HARNESS_HTML)


@pytest.fixture
async def harness(page: Page, static_site: StaticSite) -> Page:
    await page.goto(serve_front_end(static_site))
    await page.wait_for_selector("body[data-ready='1']", timeout=T)
    await page.evaluate("(t) => { window.TOKEN = t; }", TOKEN)
    return page


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"cloud-{name}.png"))


async def rows(page: Page, selector: str = "#box") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate(
        """(sel) => [...document.querySelectorAll(`${sel} li.participant`)].map((li) => ({
             identity: li.dataset.identity || null, kind: li.dataset.kind,
             speaking: li.dataset.speaking === "1", pending: li.dataset.pending === "1",
             who: li.querySelector(".who").textContent,
             remove: !!li.querySelector("button.remove") }))""",
        selector,
    )
    return found


async def captions(page: Page, selector: str = "#box") -> list[tuple[str, str, bool]]:
    found = await page.evaluate(
        """(sel) => [...document.querySelectorAll(`${sel} ol.captions li`)].map((li) =>
             [li.dataset.kind, li.textContent, li.dataset.final === "1"])""",
        selector,
    )
    return [(k, t, f) for k, t, f in found]


def no_token_in(page_text: str, console: list[str]) -> None:
    assert TOKEN not in page_text
    assert not [line for line in console if TOKEN in line]


# -- the room logic, against the fake client ------------------------------------------------------


async def test_the_room_shows_people_speakers_captions_and_plays_audio(
    harness: Page, console: list[str]
) -> None:
    page = harness
    await page.evaluate(
        """async () => {
          FakeLivekit.initial = [{ identity: "agent-ag_1", name: "coder", tracks: ["TR_agent"],
            attributes: { "hivecall.kind": "agent", "hivecall.agent_id": "ag_1" } }];
          window.room = new hc.CloudRoom({ lk: FakeLivekit });
          hc.mountCloudPanel(document.getElementById("box"), room, {});
          await room.join({ url: "ws://127.0.0.1:9", token: window.TOKEN, identity: "human-0001" });
        }"""
    )
    assert await page.evaluate("room.view.phase") == "talking"
    # Joined with the minted credentials; the microphone published; no owner controls here.
    connect = await page.evaluate("FakeLivekit.last.connects[0]")
    assert connect == {
        "url": "ws://127.0.0.1:9",
        "token": TOKEN,
        "options": {"autoSubscribe": True},
    }
    mic = await page.evaluate("FakeLivekit.last.localParticipant.micCalls")
    assert [m["on"] for m in mic] == [True] and mic[0]["options"]["echoCancellation"] is True
    assert await page.evaluate("room.view.mic") == "live"
    assert await rows(page) == [
        {"identity": "human-0001", "kind": "human", "speaking": False, "pending": False,
         "who": "You", "remove": False},
        {"identity": "agent-ag_1", "kind": "agent", "speaking": False, "pending": False,
         "who": "coder", "remove": False},
    ]  # fmt: skip
    assert await page.is_hidden("#box [data-role='manage']")

    # A guest arrives, then someone whose kind only its attributes tell (set after joining).
    await page.evaluate(
        """() => {
          const human = { "hivecall.kind": "human" };
          FakeLivekit.last.join({ identity: "guest-1", name: "Ana", attributes: human });
          FakeLivekit.last.join({ identity: "x-2", name: "helper" });
          const agent = { "hivecall.kind": "agent", "hivecall.agent_id": "ag_2" };
          FakeLivekit.last.setAttributes("x-2", agent);
        }"""
    )
    people = await rows(page)
    assert [(p["who"], p["kind"]) for p in people] == [
        ("You", "human"),
        ("Ana", "human"),
        ("coder", "agent"),
        ("helper", "agent"),
    ]

    # livekit-agents publishes an agent's state as an attribute: "thinking" shows.
    await page.evaluate(
        "FakeLivekit.last.setAttributes('agent-ag_1', { 'lk.agent.state': 'thinking' })"
    )
    state = await page.text_content("#box li[data-identity='agent-ag_1'] .agent-state")
    assert state == "thinking…"
    await page.evaluate(
        "FakeLivekit.last.setAttributes('agent-ag_1', { 'lk.agent.state': 'speaking' })"
    )
    assert await page.text_content("#box li[data-identity='agent-ag_1'] .agent-state") == ""

    # Who is speaking follows ActiveSpeakersChanged, and only it.
    await page.evaluate("FakeLivekit.last.speakers(['agent-ag_1', 'human-0001'])")
    speaking = {p["who"] for p in await rows(page) if p["speaking"]}
    assert speaking == {"coder", "You"}
    await shot(page, "room-speaking")
    await page.evaluate("FakeLivekit.last.speakers(['guest-1'])")
    assert {p["who"] for p in await rows(page) if p["speaking"]} == {"Ana"}
    await page.evaluate("FakeLivekit.last.speakers([])")
    assert not [p for p in await rows(page) if p["speaking"]]

    # Captions. The agent's speech: one text stream per segment, chunks are deltas.
    await page.evaluate(
        """() => {
          window.agentSays = FakeLivekit.last.text("agent-ag_1",
            { "lk.segment_id": "SG_a1", "lk.transcription_final": "false",
              "lk.transcribed_track_id": "TR_agent" });
          agentSays.push("Hello");
          agentSays.push(" there,");
        }"""
    )
    await page.wait_for_function(
        "document.querySelector('#box ol.captions li')?.textContent === 'coder: Hello there,'",
        timeout=T,
    )
    assert await captions(page) == [("agent", "coder: Hello there,", False)]
    # A person's speech, transcribed by the agent: one stream per update with the whole text so
    # far, sent by the agent but about the owner of the transcribed track (this page's mic).
    await page.evaluate(
        """async () => {
          agentSays.push(" what next?");
          agentSays.end({ "lk.transcription_final": "true" });
          const attrs = { "lk.segment_id": "SG_u1", "lk.transcribed_track_id": "TR_local" };
          const final = (yes) => ({ ...attrs, "lk.transcription_final": yes });
          const first = FakeLivekit.last.text("agent-ag_1", final("false"));
          first.push("open the"); first.end();
          await new Promise((r) => setTimeout(r, 30));
          const last = FakeLivekit.last.text("agent-ag_1", final("true"));
          last.push("open the README"); last.end();
          await new Promise((r) => setTimeout(r, 30));
          // An older agent: the legacy transcription event, whole text per segment.
          const coder = FakeLivekit.last.remoteParticipants.get("agent-ag_1");
          const legacy = (text, final) =>
            FakeLivekit.last.emit("transcriptionReceived", [{ id: "SG_old", text, final }], coder);
          legacy("Opening", false);
          legacy("Opening it now.", true);
        }"""
    )
    await page.wait_for_function(
        "document.querySelectorAll('#box ol.captions li').length === 3", timeout=T
    )
    assert await captions(page) == [
        ("agent", "coder: Hello there, what next?", True),
        ("human", "You: open the README", True),
        ("agent", "coder: Opening it now.", True),
    ]
    view = await page.evaluate("room.view")
    assert view["lastAgentCaption"]["text"] == "Opening it now."
    assert view["lastOwnCaption"]["text"] == "open the README"

    # Remote audio plays through an <audio> per track, removed when unsubscribed.
    await page.evaluate("window.track = FakeLivekit.last.subscribe('agent-ag_1')")
    audio = await page.evaluate(
        "[...document.querySelectorAll('.cloud-audio audio')].map((a) => a.dataset.identity)"
    )
    assert audio == ["agent-ag_1"]
    await page.evaluate("FakeLivekit.last.emit('trackUnsubscribed', track, {}, null)")
    assert await page.evaluate("document.querySelectorAll('.cloud-audio audio').length") == 0

    # Someone leaves; the microphone mutes and unmutes.
    await page.evaluate("FakeLivekit.last.leave('guest-1')")
    assert "Ana" not in [p["who"] for p in await rows(page)]
    await page.evaluate("room.toggleMute()")
    assert await page.evaluate("room.view.mic") == "muted"
    await page.evaluate("room.toggleMute()")
    assert await page.evaluate("room.view.mic") == "live"
    mic = await page.evaluate("FakeLivekit.last.localParticipant.micCalls.map((m) => m.on)")
    assert mic == [True, False, True]
    await shot(page, "room")

    # The owner removes this person: the page says so and leaves the room.
    await page.evaluate("FakeLivekit.last.kicked(FakeLivekit.DisconnectReason.PARTICIPANT_REMOVED)")
    assert await page.evaluate("room.view.phase") == "removed"
    await page.wait_for_selector("#box [data-role='status']:visible", timeout=T)
    assert await page.text_content("#box [data-role='status-text']") == (
        "You were removed from the call."
    )
    assert await page.is_hidden("#box [data-role='retry']")
    no_token_in(await page.content(), console)
    assert not [line for line in console if line.startswith(("pageerror", "error"))]


async def test_without_a_microphone_the_room_is_speaker_only(harness: Page) -> None:
    page = harness
    await page.evaluate(
        """async () => {
          FakeLivekit.micFails = true;
          window.room = new hc.CloudRoom({ lk: FakeLivekit });
          await room.join({ url: "ws://127.0.0.1:9", token: window.TOKEN });
        }"""
    )
    assert await page.evaluate("[room.view.phase, room.view.mic]") == ["talking", "speaker-only"]
    await page.evaluate("room.toggleMute()")  # nothing to mute
    assert await page.evaluate("FakeLivekit.last.localParticipant.micCalls.length") == 1


async def test_a_refused_join_says_so_and_retries_with_the_same_token(
    harness: Page, console: list[str]
) -> None:
    page = harness
    await page.evaluate(
        """async () => {
          FakeLivekit.refuse = 1;
          window.room = new hc.CloudRoom({ lk: FakeLivekit });
          hc.mountCloudPanel(document.getElementById("box"), room, {});
          await room.join({ url: "ws://127.0.0.1:9", token: window.TOKEN });
        }"""
    )
    assert await page.evaluate("room.view.phase") == "join-failed"
    text = await page.text_content("#box [data-role='status-text']") or ""
    assert text.startswith("Could not join the room")
    assert await page.is_visible("#box [data-role='retry']")
    assert await page.is_visible("#box [data-role='hang-up']")
    detail = await page.text_content("#box [data-role='status-detail']") or ""
    assert "access_token=…" in detail  # the client's error text, with the token cut out
    await shot(page, "join-failed")

    await page.click("#box [data-role='retry']")
    await page.wait_for_function("room.view.phase === 'talking'", timeout=T)
    tokens = await page.evaluate("FakeLivekit.connects.map((c) => c.token)")
    assert tokens == [TOKEN, TOKEN]
    assert await page.is_hidden("#box [data-role='status']")
    # The failed attempt's room was let go: one live room, listening.
    assert await page.evaluate("FakeLivekit.rooms.length") == 2

    # Hang up after another failure: the page leaves (the call itself is the owner's to end).
    await page.evaluate(
        "async () => { FakeLivekit.refuse = 1; await room.leave(); await room.retry(); }"
    )
    assert await page.evaluate("room.view.phase") == "join-failed"
    await page.click("#box [data-role='hang-up']")
    assert await page.evaluate("room.view.phase") == "left"
    assert await page.evaluate("FakeLivekit.rooms.every((r) => r.disconnected)")
    no_token_in(await page.content(), console)


# -- the call modal's room panel (owner controls), against the fake client and a fake API ---------


async def open_cloud_modal(page: Page) -> None:
    await page.evaluate(
        """() => {
          FakeLivekit.initial = [{ identity: "agent-ag_1", name: "coder",
            attributes: { "hivecall.kind": "agent", "hivecall.agent_id": "ag_1" } }];
          window.LivekitClient = FakeLivekit;  // what loadLivekit() finds first
          const agent = { id: "ag_1", name: "coder" };
          window.call = hc.openCallModal({ api: fakeApi, agent, mode: "cloud" });
        }"""
    )


async def test_the_call_modal_runs_a_cloud_call_with_the_owners_controls(
    harness: Page, console: list[str]
) -> None:
    page = harness
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.on("dialog", lambda d: d.accept())  # "Remove Ana from the call?"
    await open_cloud_modal(page)
    await page.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
    calls = await page.evaluate("apiCalls")
    assert calls[0] == {
        "method": "POST",
        "path": "/api/calls",
        "body": {"agent_id": "ag_1", "mode": "cloud"},
    }
    assert await page.text_content("#call-mic") == "Mic live"
    assert await page.is_hidden("#call-caption")  # the panel's caption list replaces it
    people = await rows(page, "#call-modal")
    assert [(p["who"], p["remove"]) for p in people] == [("You", False), ("coder", True)]

    # Invite a friend: the link and a copy button.
    await page.click("#call-modal [data-role='invite']")
    await page.wait_for_selector("#call-modal [data-role='invite-box']:visible", timeout=T)
    link = await page.input_value("#call-modal [data-role='invite-url']")
    assert link == "http://127.0.0.1:8000/join/Zm9vYmFyYmF6cXV4"
    await page.click("#call-modal [data-role='copy']")
    await page.wait_for_selector("#call-modal [data-role='copy']:text('Copied')", timeout=T)
    assert await page.evaluate("navigator.clipboard.readText()") == link
    assert "Works once" in (await page.text_content("#call-modal [data-role='invite-note']") or "")

    # Add an agent: only agents not in the room and not unavailable are offered; it shows as
    # joining until its worker is in the room.
    options = await page.eval_on_selector_all(
        "#call-modal [data-role='agent-pick'] option", "os => os.map((o) => o.textContent)"
    )
    assert options == ["reviewer"]
    await page.click("#call-modal [data-role='add-agent']")
    await page.wait_for_selector("#call-modal li.participant[data-pending='1']", timeout=T)
    assert [p["who"] for p in await rows(page, "#call-modal") if p["pending"]] == ["reviewer"]
    assert await page.is_hidden("#call-modal [data-role='add-agent']")  # nobody left to add
    await page.evaluate(
        """() => FakeLivekit.last.join({ identity: "agent-ag_2", name: "reviewer",
             attributes: { "hivecall.kind": "agent", "hivecall.agent_id": "ag_2" } })"""
    )
    people = await rows(page, "#call-modal")
    assert [(p["who"], p["kind"], p["pending"]) for p in people] == [
        ("You", "human", False),
        ("coder", "agent", False),
        ("reviewer", "agent", False),
    ]

    # Remove a guest.
    await page.evaluate(
        """() => FakeLivekit.last.join({ identity: "guest-1", name: "Ana",
             attributes: { "hivecall.kind": "human" } })"""
    )
    await page.evaluate("FakeLivekit.last.speakers(['agent-ag_2'])")
    await shot(page, "modal")
    await page.click("#call-modal button.remove[data-identity='guest-1']")
    await page.wait_for_function(
        "!document.querySelector(\"#call-modal li[data-identity='guest-1']\")", timeout=T
    )

    # A refusal from the hub shows in the panel.
    await page.evaluate(
        "window.failNext = { status: 409, code: 'call_finished', message: 'this call has ended' }"
    )
    await page.click("#call-modal [data-role='invite']")
    await page.wait_for_selector("#call-modal [data-role='manage-error']:visible", timeout=T)
    error = await page.text_content("#call-modal [data-role='manage-error']")
    assert error == "this call has ended"

    await page.click("#call-mute")
    assert await page.text_content("#call-mic") == "Muted"
    await page.click("#call-end")
    await page.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    assert await page.is_visible("#call-close")
    assert await page.evaluate("FakeLivekit.last.disconnected")
    made = [(c["method"], c["path"], c["body"]) for c in await page.evaluate("apiCalls")]
    assert made == [
        ("POST", "/api/calls", {"agent_id": "ag_1", "mode": "cloud"}),
        ("GET", "/api/agents", None),
        ("POST", "/api/calls/call_1/invites", {}),
        ("POST", "/api/calls/call_1/agents", {"agent_id": "ag_2"}),
        ("DELETE", "/api/calls/call_1/participants/guest-1", None),
        ("POST", "/api/calls/call_1/invites", {}),
        ("POST", "/api/calls/call_1/end", None),
    ]
    no_token_in(await page.content(), console)
    assert not [line for line in console if line.startswith(("pageerror", "error"))]


async def test_a_modal_that_cannot_join_offers_retry_and_does_not_end_the_call(
    harness: Page, console: list[str]
) -> None:
    page = harness
    await page.evaluate("FakeLivekit.refuse = 1")
    await open_cloud_modal(page)
    await page.wait_for_selector("#call-phase[data-phase='join-failed']", timeout=T)
    assert await page.text_content("#call-phase") == "Could not join the room"
    status = await page.text_content("#call-modal [data-role='status-text']") or ""
    assert status.startswith("Could not join the room:")
    assert await page.is_visible("#call-modal [data-role='retry']")
    assert await page.is_hidden("#call-modal [data-role='hang-up']")  # the modal's End call is it
    assert await page.is_visible("#call-end") and await page.is_hidden("#call-error")
    await shot(page, "modal-join-failed")
    assert [c["path"] for c in await page.evaluate("apiCalls")] == ["/api/calls", "/api/agents"]

    await page.click("#call-modal [data-role='retry']")
    await page.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
    await page.click("#call-end")
    await page.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    assert (await page.evaluate("apiCalls"))[-1]["path"] == "/api/calls/call_1/end"
    no_token_in(await page.content(), console)


async def test_the_room_ending_ends_the_call_on_the_page(harness: Page) -> None:
    page = harness
    await open_cloud_modal(page)
    await page.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
    await page.evaluate("FakeLivekit.last.kicked(FakeLivekit.DisconnectReason.ROOM_DELETED)")
    await page.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    assert await page.text_content("#call-modal [data-role='status-text']") == (
        "The call has ended."
    )
    await page.click("#call-close")
    # Ended by the room (the hub ended it): the page does not end it again.
    assert "/api/calls/call_1/end" not in [c["path"] for c in await page.evaluate("apiCalls")]


# -- the vendored client ---------------------------------------------------------------------------


def bundle_or_skip() -> None:
    if BUNDLE.exists():
        return
    reason = f"{BUNDLE} is missing: run `bash scripts/build-web.sh`"
    if os.environ.get("HIVECALL_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


async def test_the_fake_matches_the_vendored_client(page: Page, static_site: StaticSite) -> None:
    """Every name the fake stands in for exists in livekit-client 2.23 with the same value."""
    bundle_or_skip()
    await page.goto(serve_front_end(static_site, bundle=True))
    await page.wait_for_selector("body[data-ready='1']", timeout=T)
    found = await page.evaluate(
        """async () => {
          const lk = await hc.loadLivekit();
          const fake = FakeLivekit;
          const room = new lk.Room();
          const same = (real, mine) =>
            Object.fromEntries(Object.keys(mine).map((k) => [k, real[k] === mine[k]]));
          return {
            version: lk.version,
            events: same(lk.RoomEvent, fake.RoomEvent),
            reasons: same(lk.DisconnectReason, fake.DisconnectReason),
            room: ["connect", "disconnect", "registerTextStreamHandler",
                   "unregisterTextStreamHandler", "startAudio", "on", "removeAllListeners"]
              .filter((m) => typeof room[m] !== "function"),
            local: typeof lk.LocalParticipant.prototype.setMicrophoneEnabled,
            participant: ["attributes", "isAgent", "isSpeaking", "trackPublications"]
              .filter((m) => !(m in new lk.Participant("PA_1", "someone"))),
            canPlaybackAudio: "canPlaybackAudio" in room && room.remoteParticipants instanceof Map,
            connectionErrorReason: new lk.ConnectionError("x", 1).reasonName,
            trackKind: lk.Track.Kind.Audio,
          };
        }"""
    )
    assert (
        found["version"]
        == json.loads((BUNDLE.parent / "versions.json").read_text())["livekit-client"]
    )
    assert all(found["events"].values()), found["events"]
    assert all(found["reasons"].values()), found["reasons"]
    assert found["room"] == [] and found["participant"] == []
    assert found["local"] == "function" and found["canPlaybackAudio"]
    assert found["connectionErrorReason"] == "ServerUnreachable"
    assert found["trackKind"] == "audio"


def test_the_bundle_is_pinned_and_vendored_as_package_data() -> None:
    root = Path(__file__).parents[2]
    package = json.loads((root / "web" / "package.json").read_text())
    lock = json.loads((root / "web" / "package-lock.json").read_text())
    pinned = package["dependencies"]["livekit-client"]
    assert pinned[0].isdigit()  # an exact version, no range
    assert lock["packages"]["node_modules/livekit-client"]["version"] == pinned
    assert all("resolved" not in p for p in lock["packages"].values())  # no registry addresses
    assert "web/static/vendor/*" in (root / "pyproject.toml").read_text()
    assert "/src/hivecall/web/static/vendor/" in (root / ".gitignore").read_text().splitlines()


# -- the real hub, the vendored client and the LiveKit stand-in ----------------------------------


@pytest.fixture
def livekit() -> Iterator[LiveKitStandin]:
    with LiveKitStandin(api_key=LIVEKIT_API_KEY, api_secret=LIVEKIT_API_SECRET) as standin:
        yield standin


@pytest.fixture
def live_hub_settings(livekit: LiveKitStandin) -> dict[str, Any]:
    bundle_or_skip()
    return {
        "cloud_calls": True,
        "livekit_url": livekit.url,
        "livekit_api_key": LIVEKIT_API_KEY,
        "livekit_api_secret": LIVEKIT_API_SECRET,
    }


def signal_attempts(livekit: LiveKitStandin) -> list[RtcAttempt]:
    with livekit.lock:
        return [a for a in livekit.rtc_attempts if a.websocket]


async def wait_for_attempts(livekit: LiveKitStandin, count: int) -> list[RtcAttempt]:
    for _ in range(150):
        found = signal_attempts(livekit)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} /rtc attempts, saw {signal_attempts(livekit)}")


def assert_clean(page_text: str, console: list[str], *secrets: str) -> None:
    for secret in (*secrets, LIVEKIT_API_SECRET):
        assert secret not in page_text
    # Chromium itself names a failed websocket's URL (with LiveKit's access_token query) in the
    # console; the page's own messages never carry a token.
    mine = [line for line in console if "WebSocket connection to" not in line]
    for secret in (*secrets, LIVEKIT_API_SECRET):
        assert not [line for line in mine if secret in line]
    assert not [line for line in console if line.startswith("pageerror")]


async def test_the_dashboard_starts_a_cloud_call_and_the_client_reaches_the_standin(
    page: Page, live_hub: LiveHub, livekit: LiveKitStandin, console: list[str]
) -> None:
    served: list[str] = []
    page.on("request", lambda r: served.append(r.url))
    await page.goto(live_hub.login_url)
    await page.wait_for_selector("body[data-ready='1']", timeout=T)
    # Cloud calls are on but not the default: each agent gets a "Room" button beside "Call".
    async with page.expect_response(
        lambda r: r.url.endswith("/api/calls") and r.request.method == "POST"
    ) as info:
        await page.click("button.room[data-agent='echo']")
    started = await (await info.value).json()
    creds = started["call"]["livekit"]
    call_id = started["call"]["id"]
    assert started["call"]["mode"] == "cloud" and creds["room"] == f"hivecall-{call_id}"

    await page.wait_for_selector("#call-phase[data-phase='join-failed']", timeout=T)
    assert await page.text_content("#call-phase") == "Could not join the room"
    status = await page.text_content("#call-modal [data-role='status-text']") or ""
    assert status.startswith("Could not join the room:")
    assert await page.is_visible("#call-modal [data-role='retry']")
    assert await page.is_visible("#call-end")
    await shot(page, "live-join-failed")
    detail = await page.text_content("#call-modal [data-role='status-detail']") or ""
    assert "no SFU here" in detail  # what the stand-in's refusal said
    assert status == "Could not join the room: the LiveKit server refused to let this page in."

    # The vendored client came from the hub (no other origin but the stand-in was asked).
    assert f"{live_hub.url}/static/vendor/livekit-client.umd.js" in served
    origins = {u.split("/")[2] for u in served if u.startswith("http")}
    assert origins <= {live_hub.url.split("/")[2], livekit.url.split("/")[2]}, origins
    # It opened the stand-in's signal socket with the token the hub minted for this page.
    (attempt,) = await wait_for_attempts(livekit, 1)
    assert attempt.path in ("/rtc", "/rtc/v1") and attempt.token_valid
    assert (attempt.identity, attempt.room) == (creds["identity"], creds["room"])
    assert attempt.grants is not None and attempt.grants.room_join
    assert attempt.query.get("sdk") == "js" or "join_request" in attempt.query

    # Retry: the page asks the hub for a fresh token (the first one expires after some
    # minutes), then makes a second attempt; the call is still open on the hub.
    async with page.expect_response(
        lambda r: r.url.endswith(f"/api/calls/{call_id}/token") and r.request.method == "POST"
    ) as renewed:
        await page.click("#call-modal [data-role='retry']")
    fresh = (await (await renewed.value).json())["livekit"]
    assert (fresh["identity"], fresh["room"]) == (creds["identity"], creds["room"])
    second = (await wait_for_attempts(livekit, 2))[1]
    assert second.token_valid and second.identity == creds["identity"]
    await page.wait_for_selector("#call-phase[data-phase='join-failed']", timeout=T)
    call = owner(live_hub, "GET", f"/api/calls/{call_id}").json()["call"]
    assert call["state"] not in ("ended", "failed")

    # End call: the hub ends the call and deletes the room.
    await page.click("#call-end")
    await page.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    for _ in range(50):
        if owner(live_hub, "GET", f"/api/calls/{call_id}").json()["call"]["state"] == "ended":
            break
        await asyncio.sleep(0.1)
    assert owner(live_hub, "GET", f"/api/calls/{call_id}").json()["call"]["state"] == "ended"
    assert creds["room"] not in livekit.rooms
    assert_clean(await page.content(), console, creds["token"])


async def test_an_invite_link_opens_the_guest_page_which_joins_the_room(
    page: Page, live_hub: LiveHub, livekit: LiveKitStandin, console: list[str]
) -> None:
    r = owner(live_hub, "POST", "/api/calls", json={"agent_id": "echo", "mode": "cloud"})
    if r.status_code == 404:  # agents are addressed by id
        agent = owner(live_hub, "GET", "/api/agents").json()["agents"][0]
        r = owner(live_hub, "POST", "/api/calls", json={"agent_id": agent["id"], "mode": "cloud"})
    assert r.status_code == 201, r.text
    call_id = r.json()["call"]["id"]
    r = owner(live_hub, "POST", f"/api/calls/{call_id}/invites", json={})
    assert r.status_code == 201, r.text
    invite = r.json()["invite"]
    assert invite["url"].endswith(f"/join/{invite['code']}")

    link = f"{live_hub.url}/join/{invite['code']}"
    async with page.expect_response(lambda r: r.url.endswith("/api/join")) as info:
        await page.goto(link)
        await page.wait_for_selector("body[data-screen='name']", timeout=T)
        await shot(page, "guest-name")
        await page.fill("#guest-name", "Ana")
        await page.click("#join-submit")
    joined = await (await info.value).json()
    creds = joined["livekit"]
    assert creds["identity"].startswith("guest-")
    await page.wait_for_selector("#room-phase[data-phase='failed']", timeout=T)
    assert await page.text_content("#room-phase") == "Could not join the room"
    assert await page.is_visible("#room-panel [data-role='retry']")
    assert await page.is_visible("#room-leave")
    assert await page.is_hidden("#room-panel [data-role='manage']")  # guests manage nothing
    await shot(page, "guest-join-failed")
    (attempt,) = await wait_for_attempts(livekit, 1)
    assert (attempt.identity, attempt.name, attempt.room) == (
        creds["identity"],
        "Ana",
        f"hivecall-{call_id}",
    )

    # Leave; the invite was single-use, so opening it again says so.
    await page.click("#room-leave")
    await page.wait_for_selector("body[data-screen='done']", timeout=T)
    await page.goto(link)
    await page.wait_for_selector("body[data-screen='name']", timeout=T)
    await page.fill("#guest-name", "Ana again")
    await page.click("#join-submit")
    await page.wait_for_selector("#join-error[data-code='invite_used']", timeout=T)
    assert "already used" in (await page.text_content("#join-error") or "")
    assert_clean(await page.content(), console, creds["token"])


async def test_a_paired_phone_starts_a_room_call_from_the_mobile_app(
    chromium: Browser,
    live_hub: LiveHub,
    livekit: LiveKitStandin,
    console: list[str],
    request: pytest.FixtureRequest,
) -> None:
    code = owner(live_hub, "POST", "/api/pairing").json()["pairing"]["code"]
    r = httpx.post(
        f"{live_hub.url}/api/pairing/claim", json={"code": code, "device_name": "Pixel 8"}
    )
    assert r.status_code == 201, r.text
    paired = r.json()
    saved = {"token": paired["token"], "device": paired["device"], "hub": live_hub.url}
    context = await chromium.new_context(
        viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True
    )
    async with recorded_tab(context, console, request.node.name) as phone:
        await phone.goto(f"{live_hub.url}/m")
        await phone.evaluate(
            "(s) => localStorage.setItem('hivecall.device', JSON.stringify(s))", saved
        )
        await phone.reload()
        await phone.wait_for_selector("body[data-screen='home'][data-ready='1']", timeout=T)
        await phone.tap("button.room[data-agent='echo']")
        await phone.wait_for_selector("#call-phase[data-phase='join-failed']", timeout=T)
        assert await phone.is_visible("#call-modal [data-role='retry']")
        assert await phone.is_visible("#call-modal [data-role='invite']")
        assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        await shot(phone, "phone-join-failed")
        (attempt,) = await wait_for_attempts(livekit, 1)
        assert attempt.token_valid and attempt.room.startswith("hivecall-call_")
        (call,) = owner(live_hub, "GET", "/api/calls").json()["calls"]
        assert (call["mode"], call["started_by"]) == ("cloud", "Pixel 8")
        await phone.tap("#call-end")
        await phone.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
        assert_clean(await phone.content(), console, paired["token"])
