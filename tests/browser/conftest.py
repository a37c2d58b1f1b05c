"""Browser tests: Debian's Chromium driven by playwright, inside a loopback-only namespace.

Fixtures (all per test):
  chromium         a playwright Browser (async API) launched from /usr/bin/chromium
  microphone       "fake" (default: Chromium's fake device, a beep), "denied" (a device exists,
                   the permission is refused: NotAllowedError) or "missing" (no device at all:
                   NotFoundError); override with @pytest.mark.parametrize("microphone", [...])
  fake_audio       a WAV file the fake microphone plays once (default None: the beep);
                   override by parametrize or by a fixture of that name in the test module
  page             a playwright Page in a fresh context; on teardown its screenshot and console
                   go to test-artifacts/<test name>.png and .log
  console          the page's console lines and errors ("log: …", "pageerror: …")
  realtime_standin the OpenAI Realtime stand-in (tests/standins/realtime), key FAKE_OPENAI_KEY
  static_site      a tiny static server on an origin of its own: `.add(path, text)` -> its URL
  live_hub         the real hub over HTTP (tests/live.py), OpenAI pointed at realtime_standin;
                   `live_hub_settings` (a dict of Settings overrides, default {}) tunes it

Every test here is marked `browser`. Without Chromium, playwright or the network namespace
(HIVECALL_TEST_NETNS=1, set by scripts/with-netns.sh) they skip, or fail when
HIVECALL_TEST_REQUIRE_BROWSER=1 (as `make test` sets when run as root).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.keys import FAKE_OPENAI_KEY
from tests.live import LiveHub, serve_hub
from tests.standins.realtime import RealtimeStandin
from tests.standins.threaded import ServerThread

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).parent
ARTIFACTS = HERE.parent.parent / "test-artifacts"
PAGES = HERE / "pages"

BASE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    # Host candidates stay plain 127.0.0.1 even without a media permission (no mDNS names).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]

Microphone = Literal["fake", "denied", "missing"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)


def unavailable() -> str | None:
    """Why browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return (
            f"no Chromium at {CHROMIUM} (`make test` installs it as root; apt-get install chromium)"
        )
    if importlib.util.find_spec("playwright") is None:
        return "pip playwright is missing (pip install -e '.[dev]')"
    if os.environ.get("HIVECALL_TEST_NETNS") != "1":
        return (
            "not inside a loopback-only network namespace "
            "(run through scripts/with-netns.sh as root, as `make test` does)"
        )
    return None


def chromium_flags(microphone: Microphone, fake_audio: Path | None) -> list[str]:
    flags = list(BASE_FLAGS)
    if microphone == "fake":
        flags += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
        if fake_audio is not None:
            flags.append(f"--use-file-for-fake-audio-capture={fake_audio}%noloop")
    elif microphone == "denied":
        # A microphone exists but the prompt is refused: getUserMedia -> NotAllowedError.
        flags += ["--use-fake-device-for-media-stream", "--deny-permission-prompts"]
    else:
        # No fake device and the prompt auto-accepted: with no real device (containers, CI),
        # getUserMedia -> NotFoundError. The fixture checks there is none.
        flags += ["--use-fake-ui-for-media-stream"]
    return flags


@pytest.fixture(autouse=True)
def _browser_ready() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("HIVECALL_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required but cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def microphone() -> Microphone:
    return "fake"


@pytest.fixture
def fake_audio() -> Path | None:
    return None


class StaticSite:
    """Text files served from an origin of their own (http://127.0.0.1 is a secure context)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, str]] = {}
        app = Starlette(routes=[Route("/{path:path}", self._serve, methods=["GET"])])
        self.server = ServerThread(app, name="static-site")

    def add(self, path: str, text: str, media_type: str = "text/html") -> str:
        """Serve `text` at `path`; returns its URL."""
        self.files["/" + path.lstrip("/")] = (text, media_type)
        return self.url(path)

    def add_page(self, name: str) -> str:
        """Serve tests/browser/pages/<name>; returns its URL."""
        return self.add(name, (PAGES / name).read_text())

    def url(self, path: str = "/") -> str:
        return f"{self.server.origin}/{path.lstrip('/')}"

    async def _serve(self, request: Request) -> Response:
        found = self.files.get(request.url.path)
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(found[0], media_type=found[1], headers={"cache-control": "no-store"})


@pytest.fixture
def static_site() -> Iterator[StaticSite]:
    site = StaticSite()
    site.server.start()
    try:
        yield site
    finally:
        site.server.close()


@pytest.fixture
def realtime_standin() -> Iterator[RealtimeStandin]:
    with RealtimeStandin(api_key=FAKE_OPENAI_KEY) as standin:
        yield standin


@pytest.fixture
def live_hub_settings() -> dict[str, Any]:
    return {}


@pytest.fixture
def live_hub(
    tmp_path: Path,
    environ: Mapping[str, str],
    workspace: Path,
    realtime_standin: RealtimeStandin,
    live_hub_settings: dict[str, Any],
) -> Iterator[LiveHub]:
    yield from serve_hub(
        tmp_path,
        environ=environ,
        workspace=workspace,
        openai_base_url=realtime_standin.base_url,
        **live_hub_settings,
    )


@pytest.fixture
async def chromium(
    microphone: Microphone, fake_audio: Path | None, static_site: StaticSite
) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=chromium_flags(microphone, fake_audio)
        )
        try:
            if microphone == "missing":
                await _check_no_microphone(browser, static_site)
            yield browser
        finally:
            await browser.close()


async def _check_no_microphone(browser: Browser, site: StaticSite) -> None:
    page = await browser.new_page()
    try:
        await page.goto(site.add("/_devices.html", "<!doctype html><title>devices</title>"))
        kinds = await page.evaluate(
            "async () => (await navigator.mediaDevices.enumerateDevices()).map(d => d.kind)"
        )
    finally:
        await page.close()
    if "audioinput" in kinds:
        pytest.skip("this machine has a real microphone: cannot simulate a missing one")


@pytest.fixture
def console() -> list[str]:
    return []


@contextlib.asynccontextmanager
async def recorded_tab(
    context: BrowserContext, console: list[str], test_name: str
) -> AsyncIterator[Page]:
    """A tab of `context` whose console goes to `console`; on the way out its screenshot and
    console land in test-artifacts/<test name>.png and .log, and the context is closed."""
    tab = await context.new_page()
    tab.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    tab.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    try:
        yield tab
    finally:
        name = re.sub(r"[^\w.-]+", "_", test_name).strip("_")
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(Exception):
            await tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, timeout=5000)
        (ARTIFACTS / f"{name}.log").write_text("".join(f"{line}\n" for line in console))
        await context.close()


@pytest.fixture
async def page(
    chromium: Browser, console: list[str], request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    async with recorded_tab(await chromium.new_context(), console, request.node.name) as tab:
        yield tab
