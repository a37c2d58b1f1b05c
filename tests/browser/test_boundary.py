"""The browser boundary in Chromium: the CSRF seen happen (a page on another port of 127.0.0.1
posting text/plain with the owner's cookie) is refused, and the hub's own pages run under its
CSP without a single violation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from tests.browser.conftest import StaticSite
from tests.conftest import script
from tests.live import LiveHub

if TYPE_CHECKING:
    from playwright.async_api import Page

T = 15_000  # ms

ATTACK = """<!doctype html><title>cute cats</title>
<form id="f" method="POST" enctype="text/plain" action="HUB/api/agents">
  <input name='{"name": "formed", "command": "COMMAND", "x": "' value='"}'></form>
<script>
  const body = JSON.stringify({ name: "pwned", command: "COMMAND" });
  const opts = (b) => ({ method: "POST", mode: "no-cors", credentials: "include",
                         headers: { "content-type": "text/plain" }, body: b });
  window.attack = async () => {
    await fetch("HUB/api/agents", opts(body));
    await fetch("HUB/api/phone", opts(JSON.stringify({ agent_id: "echo", message: "printenv" })));
    await fetch("HUB/api/agents", { ...opts(new Blob([body])), headers: {} });  // no type at all
    setTimeout(() => document.getElementById("f").submit());  // the classic: a self-posting form
  };
</script>"""

# Violations the page reports itself, besides the console's "Refused to …" lines.
CSP_PROBE = """window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));"""


def agents_and_turns(live: LiveHub) -> tuple[list[str], int]:
    with httpx.Client(base_url=live.url, headers=live.headers) as c:
        names = [a["name"] for a in c.get("/api/agents").json()["agents"]]
        return names, len(c.get("/api/turns").json()["turns"])


async def test_a_page_on_another_local_port_cannot_use_the_signed_in_browser(
    page: Page, live_hub: LiveHub, static_site: StaticSite
) -> None:
    await page.goto(live_hub.login_url)  # the owner is signed in: a SameSite=Strict cookie
    await page.wait_for_selector("#agents-panel:not([hidden])", timeout=T)
    before = agents_and_turns(live_hub)

    # What Chromium really sent and got (playwright's request headers leave out cookies).
    sent: dict[str, dict[str, Any]] = {}
    cdp = await page.context.new_cdp_session(page)
    cdp.on(
        "Network.requestWillBeSent",
        lambda e: sent.setdefault(e["requestId"], {}).update(
            url=e["request"]["url"], method=e["request"]["method"]
        ),
    )
    cdp.on(
        "Network.requestWillBeSentExtraInfo",
        lambda e: sent.setdefault(e["requestId"], {}).update(
            headers={k.lower(): v for k, v in e["headers"].items()}
        ),
    )
    cdp.on(
        "Network.responseReceived",
        lambda e: sent.setdefault(e["requestId"], {}).update(status=e["response"]["status"]),
    )
    await cdp.send("Network.enable")
    command = script("fake_agent.py") + " {message}"
    evil = static_site.add(
        "cats.html", ATTACK.replace("HUB", live_hub.url).replace("COMMAND", command)
    )
    await page.goto(evil)
    async with page.expect_navigation(timeout=T):
        await page.evaluate("window.attack()")

    posts = [
        r for r in sent.values() if r.get("method") == "POST" and r["url"].startswith(live_hub.url)
    ]
    assert len(posts) == 4, posts
    for request in posts:
        headers = request["headers"]
        # It is the attack that was seen happen: same site, so the cookie went along...
        assert "hivecall_session=" in headers.get("cookie", ""), headers
        assert headers["sec-fetch-site"] == "same-site" and headers[
            "origin"
        ] == static_site.url().rstrip("/")
        assert request["status"] == 403  # ...and now it stops at the boundary
    assert "cross_site_request" in (await page.content())  # the form's landing page
    assert agents_and_turns(live_hub) == before


async def test_the_hubs_pages_run_under_the_csp_without_violations(
    page: Page, live_hub: LiveHub, console: list[str]
) -> None:
    await page.add_init_script(CSP_PROBE)
    response = await page.goto(live_hub.login_url)
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and live_hub.settings.openai_base_url.rsplit("/", 1)[0] in csp
    await page.wait_for_selector("#agents-panel:not([hidden])", timeout=T)
    await page.wait_for_selector("#agents tr", timeout=T)
    await page.click("#pair-phone")  # the QR code is inline SVG from the hub
    await page.wait_for_selector("#pair-qr svg", timeout=T)
    assert await page.evaluate("window.__csp") == []
    for path, ready in (
        ("/m", "body[data-screen]"),
        ("/join/ABCD1234", "#name-screen:not([hidden])"),
    ):
        await page.goto(f"{live_hub.url}{path}")
        await page.wait_for_selector(ready, timeout=T)
        assert await page.evaluate("window.__csp") == [], path
    # The guest page posts its JSON to the hub from its own origin: past the boundary, to 404.
    await page.fill("#guest-name", "Ann")
    async with page.expect_response(lambda r: r.url.endswith("/api/join"), timeout=T) as joined:
        await page.click("#join-submit")
    assert (await joined.value).status == 404
    assert await page.evaluate("window.__csp") == []
    assert not [line for line in console if "Content Security Policy" in line], console
