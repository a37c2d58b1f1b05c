"""Draw the mobile app's PNG icons (192 and 512 px) from static/icon.svg with Chromium.

Run once when the icon changes; the PNGs are committed:
    .venv/bin/python scripts/mobile-icons.py
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import async_playwright

STATIC = Path(__file__).parent.parent / "src" / "hivecall" / "web" / "static"
BACKGROUND = "#0f1115"  # the icon's own background, full bleed for home screens


async def main() -> None:
    svg = (STATIC / "icon.svg").read_text()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"]
        )
        try:
            for size in (192, 512):
                page = await browser.new_page(viewport={"width": size, "height": size})
                await page.set_content(
                    f"<html><body style='margin:0;background:{BACKGROUND}'>"
                    f"<div style='width:{size}px;height:{size}px'>{svg}</div></body></html>"
                )
                await page.eval_on_selector(
                    "svg", "s => { s.style.width = s.style.height = '100%' }"
                )
                await page.screenshot(path=str(STATIC / "m" / f"icon-{size}.png"))
                await page.close()
        finally:
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
