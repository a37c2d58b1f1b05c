"""The `live_hub` fixture: the real hub over HTTP, signed in from Chromium, OpenAI = stand-in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from tests.live import LiveHub
from tests.standins.realtime import RealtimeStandin

if TYPE_CHECKING:
    from playwright.async_api import Page


async def test_chromium_signs_in_to_the_live_hub(
    page: Page, live_hub: LiveHub, realtime_standin: RealtimeStandin
) -> None:
    response = await page.goto(live_hub.login_url)
    assert response is not None and response.ok
    # The login link traded the owner token for a session cookie and left the address bar.
    assert page.url == f"{live_hub.url}/"
    cookies = await page.context.cookies()
    assert any(c["httpOnly"] for c in cookies)
    health = await page.evaluate("fetch('/api/health').then(r => r.status)")
    assert health == 200

    agents = await live_hub.run(lambda hub: hub.agents.list())
    assert [a.name for a in agents] == ["echo"]
    assert live_hub.hub.settings.openai_base_url == realtime_standin.base_url
    assert live_hub.settings.resolved_public_url == live_hub.url

    async with httpx.AsyncClient(base_url=live_hub.url, headers=live_hub.headers) as client:
        listed = await client.get("/api/agents")
    assert listed.status_code == 200
