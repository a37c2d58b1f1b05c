"""The phone app behaves like an app: its service worker keeps the shell, so with the hub
stopped (or the phone offline) it still opens and says it cannot reach the hub, with a retry;
a new hub version replaces the kept shell; and the screen stays on while a call is live.
And the dashboard's Phone panel, where a hub with its own CA has the phone trust it first."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.browser import test_mobile, test_phone_https
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_mobile import new_code, shot
from tests.live import LiveHub
from tests.pairing.qr import decode_pixels
from tests.test_https_serve import TOKEN, HttpsHub

if TYPE_CHECKING:
    from playwright.async_api import Page

T = 15_000  # ms: generous waits for a loaded 2-core CI machine

phone = test_mobile.phone  # the fixture: a phone-sized, touch, mobile tab

CONTROLLED = "() => navigator.serviceWorker.controller !== null"

# What the shell cache holds, as paths, per cache name.
KEPT = """async () => {
  const out = {};
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    out[name] = (await cache.keys()).map((r) => new URL(r.url).pathname).sort();
  }
  return out;
}"""

SHELL = sorted(
    [
        "/m",
        "/m/manifest.webmanifest",
        "/static/hub.css",
        "/static/m/m.css",
        "/static/m/app.js",
        "/static/m/wakelock.js",
        "/static/api.js",
        "/static/callmodal.js",
        "/static/call.js",
        "/static/cloud.js",
        "/static/cloudaudio.js",
        "/static/cloudpanel.js",
        "/static/turns.js",
        "/static/turnlist.js",
        "/static/icon.svg",
        "/static/m/icon-192.png",
        "/static/m/icon-512.png",
    ]
)

# Every screen wake lock the page is given, kept where the test can see (and drop) it.
WATCH_WAKE_LOCKS = """(() => {
  window.wakeLocks = [];
  const wakeLock = navigator.wakeLock;
  if (!wakeLock) return;
  const request = wakeLock.request.bind(wakeLock);
  wakeLock.request = async (type) => {
    const sentinel = await request(type);
    window.wakeLocks.push(sentinel);
    return sentinel;
  };
})();"""

NO_WAKE_LOCK = "Object.defineProperty(Navigator.prototype, 'wakeLock', { get: () => undefined });"


async def paired(phone: Page, live: LiveHub) -> None:
    """Pair the phone from a QR link; the app is on its agents, under its service worker."""
    await phone.goto(new_code(live)["url"])
    await phone.wait_for_selector("body[data-screen='pair']", timeout=T)
    await phone.tap("#pair-submit")
    await phone.wait_for_selector("body[data-screen='home'][data-ready='1']", timeout=T)
    await phone.wait_for_function(CONTROLLED, timeout=T)


async def test_the_app_opens_from_its_shell_when_the_hub_is_stopped(
    phone: Page, live_hub: LiveHub, console: list[str]
) -> None:
    await paired(phone, live_hub)
    version = httpx.get(f"{live_hub.url}/api/health").json()["version"]
    kept = await phone.evaluate(KEPT)
    assert kept == {f"hivecall-shell-1-{version}": SHELL}  # the shell, and no API answer
    script = httpx.get(f"{live_hub.url}/m/sw.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["service-worker-allowed"] == "/m"
    assert f'"{version}"' in script.text and "__HUB_VERSION__" not in script.text
    scope = await phone.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{live_hub.url}/m"

    await asyncio.to_thread(live_hub.server.close)  # the hub stops
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{live_hub.url}/m", timeout=5)
    await phone.reload()
    await phone.wait_for_selector("body[data-screen='home'][data-hub='unreachable']", timeout=T)
    says = await phone.text_content("#unreachable-text") or ""
    assert says == (
        f"Can't reach your hub at {live_hub.url}: is it running and is this phone on the "
        "same network?"
    )
    assert await phone.is_visible("#unreachable-retry")
    assert await phone.text_content("#whoami") == "Pixel 8"  # the app itself, from the shell
    await shot(phone, "hub-unreachable")

    # Try again asks the hub again (and it is still down).
    failed: list[str] = []
    phone.on("requestfailed", lambda r: failed.append(r.url))
    await phone.tap("#unreachable-retry")
    await phone.wait_for_function("() => !document.querySelector('#unreachable-retry').disabled")
    assert f"{live_hub.url}/api/agents" in failed
    assert await phone.is_visible("#unreachable")
    assert not [line for line in console if line.startswith("pageerror")]


async def test_an_offline_phone_opens_the_app_and_recovers_with_try_again(
    phone: Page, live_hub: LiveHub, console: list[str]
) -> None:
    await paired(phone, live_hub)
    await phone.context.set_offline(True)
    await phone.reload()
    await phone.wait_for_selector("body[data-hub='unreachable']", timeout=T)
    assert await phone.is_visible("#unreachable")
    await phone.context.set_offline(False)
    await phone.tap("#unreachable-retry")
    await phone.wait_for_selector("body[data-hub='reachable'][data-ready='1']", timeout=T)
    assert await phone.is_hidden("#unreachable")
    assert "echo" in (await phone.text_content("li.card") or "")
    assert not [line for line in console if line.startswith("pageerror")]


async def test_a_new_hub_version_replaces_the_kept_shell(
    phone: Page, live_hub: LiveHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    await paired(phone, live_hub)
    (old,) = await phone.evaluate("caches.keys()")
    # The live hub runs in this process: it serves its next version's worker from now on.
    monkeypatch.setattr("hivecall.web.mobile.__version__", "99.0.0")
    await phone.evaluate("navigator.serviceWorker.ready.then((r) => r.update())")
    kept = await phone.evaluate(KEPT)
    for _ in range(T // 100):  # the new worker installs, activates, drops the old shell
        if old not in kept:
            break
        await asyncio.sleep(0.1)
        kept = await phone.evaluate(KEPT)
    assert list(kept) == ["hivecall-shell-1-99.0.0"] and old not in kept
    assert kept["hivecall-shell-1-99.0.0"] == SHELL


async def _call_echo(phone: Page) -> None:
    await phone.tap("button.call[data-agent='echo']")
    await phone.wait_for_selector("#call-phase[data-phase='talking']", timeout=T)


async def test_the_screen_stays_on_during_a_call(
    phone: Page, live_hub: LiveHub, console: list[str]
) -> None:
    await phone.add_init_script(WATCH_WAKE_LOCKS)
    await paired(phone, live_hub)
    assert await phone.evaluate("'wakeLock' in navigator")  # headless Chromium has it
    assert await phone.get_attribute("body", "data-wake-lock") == "off"
    await _call_echo(phone)
    await phone.wait_for_selector("body[data-wake-lock='held']", timeout=T)
    held = "() => window.wakeLocks.filter((s) => !s.released).length"
    assert await phone.evaluate(held) == 1

    # The browser drops the lock when the page is hidden; visible again, the app asks again.
    # (Headless pages never hide: the drop is the lock's own release, then the event.)
    await phone.evaluate("window.wakeLocks.at(-1).release()")
    await phone.wait_for_selector("body[data-wake-lock='wanted']", timeout=T)
    await phone.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    await phone.wait_for_selector("body[data-wake-lock='held']", timeout=T)
    assert await phone.evaluate("window.wakeLocks.length") == 2
    assert await phone.evaluate(held) == 1

    await phone.tap("#call-end")
    await phone.wait_for_selector("#call-phase[data-phase='ended']", timeout=T)
    await phone.wait_for_selector("body[data-wake-lock='off']", timeout=T)
    await phone.wait_for_function(f"{held} === 0", timeout=T)
    assert not [line for line in console if line.startswith("pageerror")]


async def test_without_a_wake_lock_the_call_goes_on(
    phone: Page, live_hub: LiveHub, console: list[str]
) -> None:
    await phone.add_init_script(NO_WAKE_LOCK)
    await paired(phone, live_hub)
    assert await phone.evaluate("navigator.wakeLock") is None
    await _call_echo(phone)
    assert await phone.get_attribute("body", "data-wake-lock") == "wanted"
    await phone.tap("#call-end")
    await phone.wait_for_selector("body[data-wake-lock='off']", timeout=T)
    (call,) = httpx.get(f"{live_hub.url}/api/calls", headers=live_hub.headers).json()["calls"]
    assert call["state"] == "ended"
    assert not [line for line in console if line.startswith("pageerror")]


# -- the dashboard's Phone panel: trusting the hub's own CA before pairing ---------------------

hub = test_phone_https.hub  # the fixture: `hivecall serve --https` on a namespace address

# The QR code drawn in `selector`, as grayscale pixels (n x n) for a real QR decoder.
QR_PIXELS = """([selector, n]) => new Promise((resolve, reject) => {
  const svg = document.querySelector(selector).cloneNode(true);
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


async def qr_text(page: Page, selector: str) -> list[str]:
    n = 296
    return decode_pixels(bytes(await page.evaluate(QR_PIXELS, [selector, n])), width=n, height=n)


async def test_with_its_own_ca_the_phone_panel_trusts_the_hub_first(
    page: Page, hub: HttpsHub, console: list[str]
) -> None:
    await page.goto(f"{hub.plain}/?token={TOKEN}")
    await page.wait_for_selector("body[data-ready='1']", timeout=T)
    assert await page.is_hidden("#pair-trust")
    await page.click("#pair-phone")
    await page.wait_for_selector("#pairing[data-state='waiting']", timeout=T)
    ca_url = f"{hub.secure}/ca.crt"
    # Step 1: the CA's QR code (read by a real decoder), its link and its fingerprint.
    assert await page.is_visible("#pair-trust")
    assert await page.text_content("#pair-trust h3") == "1. Trust this hub on the phone"
    assert await qr_text(page, "#pair-ca-qr svg") == [ca_url]
    assert await page.get_attribute("#pair-ca-url", "href") == ca_url
    assert await page.text_content("#pair-ca-url") == ca_url
    again = httpx.post(f"{hub.plain}/api/pairing", headers={"authorization": f"Bearer {TOKEN}"})
    fingerprint = again.json()["https"]["fingerprint"]
    assert await page.text_content("#pair-ca-fingerprint") == fingerprint
    notes = await page.text_content("#pair-trust ul.platforms") or ""
    for words in (
        "Install a certificate → CA certificate",
        "Certificate Trust Settings",
        "Desktop",
    ):
        assert words in notes, words
    # Step 2: the pairing code, as without HTTPS, for the phone's HTTPS address.
    code = await page.text_content("#pair-code-text") or ""
    link = f"{hub.secure}/m#pair={code.replace('-', '')}"
    assert await qr_text(page, "#pair-qr svg") == [link]
    await page.screenshot(path=str(ARTIFACTS / "phone-panel-trust.png"), full_page=True)
    assert not [line for line in console if line.startswith("pageerror")]


async def test_without_https_the_phone_panel_has_no_trust_step(
    page: Page, live_hub: LiveHub, console: list[str]
) -> None:
    await page.goto(live_hub.login_url)
    await page.wait_for_selector("body[data-ready='1']", timeout=T)
    await page.click("#pair-phone")
    await page.wait_for_selector("#pairing[data-state='waiting']", timeout=T)
    made = httpx.post(f"{live_hub.url}/api/pairing", headers=live_hub.headers).json()
    assert made["https"] is None
    assert await page.is_hidden("#pair-trust")
    assert await page.is_visible("#pair-qr")
    assert not [line for line in console if line.startswith("pageerror")]
