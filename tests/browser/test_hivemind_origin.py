"""A web page in Chromium cannot open the HiveMind listener (ws://127.0.0.1:PORT): browsers
always send Origin, and the listener refuses the handshake (403) unless the page's origin is in
hivemind_allowed_origins. The access key is the page's to know here, as a page could have it
from a leaked config: the listener must not rely on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.browser.conftest import StaticSite
from tests.hivemind import conftest as hivemind_fixtures
from tests.hivemind.conftest import MakeHive
from tests.hivemind.peer import url

if TYPE_CHECKING:
    from playwright.async_api import Page

PROBE = """<!doctype html><title>cute cats</title>
<script>
  window.probe = (url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    const t = setTimeout(() => resolve("timeout"), 5000);
    ws.onmessage = (e) => { clearTimeout(t); ws.close(); resolve("read: " + e.data.slice(0, 30)); };
    ws.onerror = () => { clearTimeout(t); resolve("refused"); };
  });
</script>"""

# The HiveMind tests' fixtures: a hub with its listener on a free 127.0.0.1 port.
hive_settings = hivemind_fixtures.hive_settings
make_hive = hivemind_fixtures.make_hive


async def test_a_page_cannot_open_the_listener(
    page: Page, make_hive: MakeHive, static_site: StaticSite
) -> None:
    async with make_hive() as hive:
        cred = await hive.add("sat")
        await page.goto(static_site.add("cats.html", PROBE))
        assert await page.evaluate("(u) => window.probe(u)", url(hive.port, cred.key)) == "refused"
        assert not hive.listener.live


async def test_a_listed_origin_may(
    page: Page, make_hive: MakeHive, static_site: StaticSite
) -> None:
    async with make_hive(hivemind_allowed_origins=static_site.server.origin) as hive:
        cred = await hive.add("sat")
        await page.goto(static_site.add("panel.html", PROBE))
        got = await page.evaluate("(u) => window.probe(u)", url(hive.port, cred.key))
        assert got.startswith('read: {"msg_type": "hello"'), got
