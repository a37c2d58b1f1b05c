"""The phone: the mobile web app (/m) in a phone-sized Chromium, paired with a code from the
owner, calling an agent through the Realtime stand-in, then unpaired by the owner. And the
dashboard's Phone panel that makes the codes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser.conftest import ARTIFACTS, recorded_tab
from tests.live import LiveHub, owner
from tests.pairing.qr import decode_pixels
from tests.standins.realtime import RealtimeStandin
from tests.standins.realtime.script import TOOL_MESSAGE

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

T = 15_000  # ms: generous waits for a loaded 2-core CI machine
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
WIDTH = 375  # the narrowest phone the app is laid out for


@pytest.fixture
async def phone(
    chromium: Browser, console: list[str], request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    """A tab in a phone-sized, touch, mobile context."""
    context = await chromium.new_context(
        viewport={"width": WIDTH, "height": 812},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        user_agent=PHONE_UA,
    )
    async with recorded_tab(context, console, request.node.name) as tab:
        yield tab


def new_code(live: LiveHub) -> dict[str, Any]:
    r = owner(live, "POST", "/api/pairing")
    assert r.status_code == 201, r.text
    pairing: dict[str, Any] = r.json()["pairing"]
    return pairing


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"mobile-{name}.png"))


async def stored(page: Page) -> Any:
    return json.loads(await page.evaluate("localStorage.getItem('hivecall.device') || 'null'"))


async def fits_the_width(page: Page) -> bool:
    return bool(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


async def test_a_phone_pairs_from_the_qr_link_calls_an_agent_and_is_unpaired(
    phone: Page, live_hub: LiveHub, realtime_standin: RealtimeStandin, console: list[str]
) -> None:
    made = new_code(live_hub)
    assert made["url"].endswith("#pair=" + made["code"].replace("-", ""))
    await phone.goto(made["url"])  # what the camera opens after scanning the QR code
    await phone.wait_for_selector("body[data-screen='pair']", timeout=T)
    assert await phone.input_value("#pair-code") == made["code"]
    assert await phone.input_value("#pair-name") == "Pixel 8"  # from the phone's user agent
    assert await phone.evaluate("location.href") == f"{live_hub.url}/m"  # code out of the bar
    assert await phone.is_hidden("#insecure")  # 127.0.0.1 is a secure context
    await shot(phone, "pair")

    await phone.tap("#pair-submit")
    await phone.wait_for_selector("body[data-screen='home'][data-ready='1']", timeout=T)
    saved = await stored(phone)
    assert saved["token"].startswith("hcd_") and saved["hub"] == live_hub.url
    assert saved["device"]["name"] == "Pixel 8"
    assert await phone.text_content("#whoami") == "Pixel 8"
    card = await phone.text_content("li.card") or ""
    assert "echo" in card and "ready" in card
    assert await fits_the_width(phone)
    await shot(phone, "agents")

    # One tap calls the agent: the same call modal as the dashboard, against the stand-in.
    await phone.tap("button.call[data-agent='echo']")
    await phone.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
    assert await phone.text_content("#call-mic") == "Mic live"
    # The agent's answer (the echo agent repeats the request) is the latest caption.
    await phone.wait_for_selector(f"#call-caption:text('{TOOL_MESSAGE}')", timeout=T)
    assert (await phone.text_content("#call-caption") or "").startswith("The agent says:")
    assert await fits_the_width(phone)
    await shot(phone, "call")
    await phone.tap("#call-end")
    await phone.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    await phone.tap("#call-close")
    await phone.wait_for_selector("#calls li:has-text('ended')", timeout=T)
    assert "echo" in (await phone.text_content("#calls li") or "")
    await shot(phone, "recent-calls")

    # The owner sees the phone's call, its tool turn relayed with the device token.
    (call,) = owner(live_hub, "GET", "/api/calls").json()["calls"]
    assert (call["started_by"], call["state"]) == ("Pixel 8", "ended")
    detail = owner(live_hub, "GET", f"/api/calls/{call['id']}").json()
    assert [t["message"] for t in detail["turns"]] == [TOOL_MESSAGE]
    assert realtime_standin.last_call.function_outputs

    # The owner unpairs it: the next request gets 401 and the app asks to pair again.
    (device,) = owner(live_hub, "GET", "/api/devices").json()["devices"]
    assert device["name"] == "Pixel 8" and device["last_seen_at"]
    assert owner(live_hub, "DELETE", f"/api/devices/{device['id']}").status_code == 200
    r = httpx.get(
        f"{live_hub.url}/api/agents", headers={"authorization": f"Bearer {saved['token']}"}
    )
    assert r.status_code == 401
    await phone.tap("#refresh")
    await phone.wait_for_selector("body[data-screen='pair']", timeout=T)
    notice = await phone.text_content("#pair-notice") or ""
    assert "no longer paired" in notice and await phone.is_visible("#pair-notice")
    assert await stored(phone) is None
    await shot(phone, "unpaired")
    assert not [line for line in console if line.startswith("pageerror")]


@pytest.mark.parametrize("microphone", ["denied"])
async def test_a_phone_without_the_microphone_calls_speaker_only(
    phone: Page, live_hub: LiveHub, console: list[str], microphone: str
) -> None:
    await phone.goto(new_code(live_hub)["url"])
    await phone.wait_for_selector("body[data-screen='pair']", timeout=T)
    await phone.tap("#pair-submit")
    await phone.wait_for_selector("body[data-screen='home'][data-ready='1']", timeout=T)
    await phone.tap("button.call[data-agent='echo']")
    await phone.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)
    assert await phone.text_content("#call-mic") == "Speaker-only"
    assert await phone.is_disabled("#call-mute")
    await phone.wait_for_selector(f"#call-caption:text('{TOOL_MESSAGE}')", timeout=T)
    await shot(phone, "speaker-only")
    await phone.tap("#call-end")
    await phone.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    (call,) = owner(live_hub, "GET", "/api/calls").json()["calls"]
    assert (call["speaker_only"], call["state"]) == (True, "ended")
    assert not [line for line in console if line.startswith("pageerror")]


async def test_typing_a_code_and_coming_back_later(
    phone: Page, live_hub: LiveHub, console: list[str]
) -> None:
    made = new_code(live_hub)
    await phone.goto(f"{live_hub.url}/m")
    await phone.wait_for_selector("body[data-screen='pair']", timeout=T)
    assert await phone.is_hidden("#pair-notice")
    wrong = "ZZZZZZZZ" if made["code"] != "ZZZZ-ZZZZ" else "YYYYYYYY"
    await phone.fill("#pair-code", wrong)
    await phone.fill("#pair-name", "Kitchen tablet")
    await phone.tap("#pair-submit")
    await phone.wait_for_selector("#pair-error[data-code='pairing_code_invalid']", timeout=T)
    assert "not right" in (await phone.text_content("#pair-error") or "")
    await shot(phone, "wrong-code")

    await phone.fill("#pair-code", made["code"].lower().replace("-", " "))
    await phone.tap("#pair-submit")
    await phone.wait_for_selector("body[data-screen='home'][data-ready='1']", timeout=T)
    # The phone remembers the hub: opening the app again goes straight to the agents.
    await phone.reload()
    await phone.wait_for_selector("body[data-screen='home'][data-ready='1']", timeout=T)
    assert await phone.text_content("#whoami") == "Kitchen tablet"
    assert (await stored(phone))["hub"] == live_hub.url

    # Installable: the manifest and its icons, as a browser reads them.
    manifest = await phone.evaluate(
        "async () => (await fetch(document.querySelector('link[rel=manifest]').href)).json()"
    )
    assert manifest["start_url"] == "/m" and manifest["display"] == "standalone"
    sizes = await phone.evaluate(
        """async (icons) => Promise.all(icons.map(async (i) => {
             const img = new Image(); img.src = i.src; await img.decode();
             return [i.sizes, `${img.naturalWidth}x${img.naturalHeight}`, i.type]; }))""",
        [i for i in manifest["icons"] if i["type"] == "image/png"],
    )
    assert sizes == [
        ["192x192", "192x192", "image/png"],
        ["512x512", "512x512", "image/png"],
    ]
    assert not [line for line in console if line.startswith("pageerror")]


QR_PIXELS = """(n) => new Promise((resolve, reject) => {
  const svg = document.querySelector('#pair-qr svg').cloneNode(true);
  svg.setAttribute('width', n); svg.setAttribute('height', n);
  const img = new Image();
  img.onload = () => {
    const c = document.createElement('canvas'); c.width = c.height = n;
    const ctx = c.getContext('2d'); ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, n, n);
    ctx.drawImage(img, 0, 0, n, n);
    const d = ctx.getImageData(0, 0, n, n).data, out = [];
    for (let i = 0; i < d.length; i += 4) out.push(d[i + 1]);
    resolve(out);
  };
  img.onerror = reject;
  img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(
    new XMLSerializer().serializeToString(svg));
})"""


async def test_the_dashboard_phone_panel_pairs_and_revokes(
    page: Page, live_hub: LiveHub, console: list[str]
) -> None:
    await page.goto(live_hub.login_url)
    await page.wait_for_selector("body[data-ready='1']", timeout=T)
    assert await page.is_visible("#devices-empty")
    await page.click("#pair-phone")
    await page.wait_for_selector("#pairing[data-state='waiting']", timeout=T)
    code = await page.text_content("#pair-code-text") or ""
    link = await page.text_content("#pair-url") or ""
    assert link == f"{live_hub.url}/m#pair={code.replace('-', '')}"
    status = await page.text_content("#pair-status") or ""
    assert re.fullmatch(r"Waiting for a phone… expires in [0-5]:[0-5]\d", status), status
    # The hub listens on 127.0.0.1: the panel says how to let a phone reach it.
    hint = await page.text_content("#pair-hint") or ""
    assert await page.is_visible("#pair-hint") and "--host 0.0.0.0" in hint
    # The QR code on the screen, read by a real QR decoder, is that link.
    n = 296
    pixels = await page.evaluate(QR_PIXELS, n)
    assert decode_pixels(bytes(pixels), width=n, height=n) == [link]
    await page.screenshot(path=str(ARTIFACTS / "phone-panel-code.png"), full_page=True)

    r = httpx.post(
        f"{live_hub.url}/api/pairing/claim", json={"code": code, "device_name": "Pixel 8"}
    )
    assert r.status_code == 201
    token = r.json()["token"]
    await page.wait_for_selector("#pairing[data-state='paired']", timeout=T)
    assert await page.text_content("#pair-status") == "Paired: Pixel 8."
    assert await page.is_hidden("#pair-qr")
    await page.wait_for_selector("#devices tr:has-text('Pixel 8')", timeout=T)
    assert await page.is_hidden("#devices-empty")
    await page.screenshot(path=str(ARTIFACTS / "phone-panel-paired.png"), full_page=True)

    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.click("#devices button.revoke")
    await page.wait_for_selector("#devices-empty", state="visible", timeout=T)
    r = httpx.get(f"{live_hub.url}/api/agents", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert not [line for line in console if line.startswith("pageerror")]
