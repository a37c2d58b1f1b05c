"""The browser boundary (boundary.py): the names the hub answers to, what pages of other
origins may ask of it, JSON bodies, security headers, proxies, and throttled guessing.

Each attack is the one seen happen against a hub on 127.0.0.1 (issue 16), now refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from hivecall.app import create_app
from hivecall.boundary import Boundary, Rules, content_security_policy, page_headers
from hivecall.errors import ConfigError
from hivecall.http_api import error_response
from hivecall.settings import Settings
from tests.conftest import HUB_URL, OWNER, OWNER_HEADERS, script
from tests.live import LiveHub, serve_hub
from tests.standins.threaded import ServerThread, free_port
from tests.test_serve_e2e import Server

# A page served from another port of the same machine: the same site, another origin.
EVIL_PAGE = "http://127.0.0.1:3000"
CROSS_SITE = {"origin": EVIL_PAGE, "sec-fetch-site": "same-site", "content-type": "text/plain"}


def command_agent(name: str = "pwned") -> bytes:
    """What the attack page posted: a command agent that would run what it is told."""
    return json.dumps({"name": name, "command": script("fake_agent.py") + " {message}"}).encode()


async def signed_in(anon: httpx.AsyncClient) -> None:
    """The owner's browser: the login URL leaves a session cookie in `anon`."""
    r = await anon.get("/", params={"token": OWNER})
    assert r.status_code == 303
    anon.cookies.set("hivecall_session", r.cookies["hivecall_session"])


async def agent_names(client: httpx.AsyncClient) -> list[str]:
    return [a["name"] for a in (await client.get("/api/agents")).json()["agents"]]


def code_of(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


# -- CSRF: the signed-in browser's cookie, sent by another local page -----------------------------


async def test_a_cross_site_post_with_the_cookie_creates_nothing(
    anon: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await signed_in(anon)
    before = await agent_names(client)
    attempts: list[dict[str, str]] = [
        CROSS_SITE,  # what Chromium sends for the attack page's fetch()
        {**CROSS_SITE, "content-type": "application/json"},  # (needs a preflight; still no)
        {"origin": "null", "content-type": "text/plain"},  # a sandboxed frame, a data: page
        {"sec-fetch-site": "same-site", "content-type": "text/plain"},  # Origin stripped
        {"content-type": "application/json"},  # neither Origin nor Sec-Fetch-Site
    ]
    for headers in attempts:
        r = await anon.post("/api/agents", content=command_agent(), headers=headers)
        assert r.status_code == 403, (headers, r.text)
        assert r.json() == {
            "error": {"code": "cross_site_request", "message": r.json()["error"]["message"]}
        }
        r = await anon.post(
            "/api/phone", content=b'{"agent_id": "echo", "message": "printenv"}', headers=headers
        )
        assert r.status_code == 403 and code_of(r) == "cross_site_request"
    assert await agent_names(client) == before
    assert (await client.get("/api/turns")).json()["turns"] == []


async def test_the_hubs_own_pages_still_post_with_the_cookie(anon: httpx.AsyncClient) -> None:
    await signed_in(anon)
    json_type = {"content-type": "application/json"}
    for n, same in enumerate(({"origin": HUB_URL}, {"sec-fetch-site": "same-origin"})):
        name = f"mine{n}"
        r = await anon.post(
            "/api/agents", content=command_agent(name), headers={**same, **json_type}
        )
        assert r.status_code == 201, r.text
        # ...but never with a body that does not say it is JSON.
        r = await anon.post(
            "/api/agents",
            content=command_agent("other"),
            headers={**same, "content-type": "text/plain"},
        )
        assert r.status_code == 415 and code_of(r) == "unsupported_media_type"
    assert "other" not in await agent_names(anon)


async def test_bearer_requests_need_no_origin(client: httpx.AsyncClient) -> None:
    """The CLI, SDKs and phones send a bearer header: no browser sends one across origins."""
    r = await client.post(
        "/api/agents", content=command_agent("cli"), headers={"content-type": "application/json"}
    )
    assert r.status_code == 201, r.text
    # A bearer header beats a stale cookie from the same jar.
    client.cookies.set("hivecall_session", "stale")
    r = await client.post("/api/phone", json={"agent_id": "echo", "message": "hi"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
async def test_json_bodies_must_say_they_are_json(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    before = await agent_names(client)
    r = await client.post("/api/agents", content=command_agent(), headers=headers)
    assert r.status_code == 415, r.text
    assert (
        code_of(r) == "unsupported_media_type"
        and "application/json" in r.json()["error"]["message"]
    )
    assert await agent_names(client) == before
    r = await client.post(
        "/v1/chat/completions", content=b'{"model": "echo", "messages": []}', headers=headers
    )
    assert r.status_code == 415 and r.json()["error"]["type"] == "invalid_request_error"
    ok = await client.post(
        "/api/agents",
        content=command_agent("typed"),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201


# -- DNS rebinding: the hub reached under the attacker's name -------------------------------------


@pytest.mark.parametrize("path", ["/api/health", "/", "/api/agents", "/v1/models", "/api/tags"])
async def test_a_rebinding_host_is_refused(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path, headers={"host": "evil.example:8765"})
    assert r.status_code == 421, r.text
    error = r.json()["error"]
    if path == "/api/tags":  # Ollama's clients read {"error": "message"}
        assert "allowed_hosts" in error
    else:
        assert error["code"] == "host_not_allowed" and "allowed_hosts" in error["message"]


async def test_the_names_the_hub_answers_to(client: httpx.AsyncClient) -> None:
    machine = socket.gethostname().lower()
    for host in (
        "127.0.0.1:8765",
        "127.0.0.1",
        "localhost:1234",
        "LOCALHOST.",
        "app.localhost",
        "[::1]:8765",
        machine,
        f"{machine.split('.')[0]}.local:8765",
    ):
        r = await client.get("/api/health", headers={"host": host})
        assert r.status_code == 200, (host, r.text)
    for host in ("evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "10.0.0.1"):
        r = await client.get("/api/health", headers={"host": host})
        assert r.status_code == 421, host


@pytest.fixture
def named_hub(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        public_url="https://hub.example.org",
        allowed_hosts="studio.lan, 192.0.2.10",
    )


async def test_public_url_and_allowed_hosts_are_answered(
    named_hub: Settings, environ: dict[str, str], workspace: Path
) -> None:
    app = create_app(named_hub, environ=environ, workspace=workspace)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            for host in ("hub.example.org", "studio.lan:8765", "192.0.2.10"):
                assert (await c.get("/api/health", headers={"host": host})).status_code == 200
            assert (await c.get("/api/health", headers={"host": "evil.example"})).status_code == 421
            # Behind the TLS proxy of public_url, the page's origin is https://hub.example.org.
            r = await c.post(
                "/api/agents",
                json={"name": "viaproxy", "runtime": "echo"},
                headers={
                    "host": "hub.example.org",
                    "origin": "https://hub.example.org",
                    "cookie": "hivecall_session=x",
                },
            )
            assert r.status_code == 401  # past the boundary; the cookie itself is no good


def test_a_lan_address_is_answered_where_the_hub_listens_on_it() -> None:
    """With --host 0.0.0.0 a phone opens http://192.168.1.20:8765: the address the request came
    in on is the hub's own (an address, unlike a name, cannot be rebound)."""
    rules = Rules.of(
        Settings(host="0.0.0.0"), is_compat=lambda _p: False, headers={}, render=error_response
    )
    lan = {"type": "http", "server": ("192.168.1.20", 8765)}
    assert rules.host_allowed("192.168.1.20:8765", lan)
    assert not rules.host_allowed("192.168.1.21:8765", lan)
    mapped = {"type": "http", "server": ("::ffff:192.168.1.20", 8765)}
    assert rules.host_allowed("192.168.1.20:8765", mapped)


# -- the compat API and browsers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "flavour"),
    [("/v1/models", "openai"), ("/api/tags", "ollama"), ("/api/version", "ollama")],
)
async def test_the_compat_api_refuses_browser_origins(
    client: httpx.AsyncClient, path: str, flavour: str
) -> None:
    assert (await client.get(path)).status_code == 200
    for origin in (EVIL_PAGE, HUB_URL, "null"):  # even the hub's own pages have no use for it
        r = await client.get(path, headers={"origin": origin})
        assert r.status_code == 403, (origin, r.text)
        if flavour == "openai":
            assert r.json()["error"]["code"] == "cross_site_request"
        else:
            assert "compat_allowed_origins" in r.json()["error"]
    r = await client.post(
        "/api/chat",
        json={"model": "echo", "messages": [{"role": "user", "content": "hi"}], "stream": False},
        headers={"origin": EVIL_PAGE},
    )
    assert r.status_code == 403
    assert (await client.get("/api/turns")).json()["turns"] == []


async def test_listed_origins_may_use_the_compat_api(
    tmp_path: Path, database_url: str, environ: dict[str, str], workspace: Path
) -> None:
    webui = "https://webui.example.org"
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        compat_allowed_origins=f"{webui}/",
    )
    app = create_app(settings, environ=environ, workspace=workspace)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=HUB_URL) as c:
            preflight = await c.options(
                "/v1/chat/completions",
                headers={
                    "origin": webui,
                    "access-control-request-method": "POST",
                    "access-control-request-headers": "authorization, content-type",
                },
            )
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == webui
            assert "authorization" in preflight.headers["access-control-allow-headers"]
            r = await c.get("/v1/models", headers={"origin": webui, **OWNER_HEADERS})
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == webui
            r = await c.get("/v1/models", headers={"origin": EVIL_PAGE, **OWNER_HEADERS})
            assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
            # The listed origin is for the compat API only, not for hivecall's own.
            r = await c.get("/api/agents", headers={"origin": webui, **OWNER_HEADERS})
            assert r.status_code == 403


def test_boundary_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    for bad in ("webui.example.org", "https://webui.example.org/path", "ftp://x", "*"):
        with pytest.raises(ConfigError, match="compat_allowed_origins"):
            create_app(Settings(home=tmp_path, compat_allowed_origins=bad), environ={})
    for bad in ("evil example", "*.example.org"):
        with pytest.raises(ConfigError, match="allowed_hosts"):
            create_app(Settings(home=tmp_path, allowed_hosts=bad), environ={})
    with pytest.raises(ConfigError, match="trusted_proxies"):
        create_app(Settings(home=tmp_path, trusted_proxies="10.0.0.0/33"), environ={})


# -- event streams and WebSockets -------------------------------------------------------------


async def test_event_streams_refuse_a_foreign_origin(client: httpx.AsyncClient) -> None:
    body = {"agent_id": "echo", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    r = await client.post("/api/chat/agent-runtime", json=body, headers={"origin": EVIL_PAGE})
    assert r.status_code == 403 and code_of(r) == "cross_site_request"
    assert (await client.get("/api/turns")).json()["turns"] == []
    # A turn's event stream (an EventSource with credentials says its Origin).
    r = await client.post("/api/phone", json={"agent_id": "echo", "message": "hi"})
    turn = r.json()["turn_id"]
    r = await client.get(
        f"/api/turns/{turn}/events", headers={"origin": EVIL_PAGE, "accept": "text/event-stream"}
    )
    assert r.status_code == 403 and code_of(r) == "cross_site_request"
    r = await client.get(f"/api/turns/{turn}/events", headers={"origin": HUB_URL})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")


async def _echo_socket(ws: WebSocket) -> None:
    await ws.accept()
    await ws.send_text("hello")
    await ws.close()


@pytest.fixture
def socket_server() -> Iterator[ServerThread]:
    """The boundary in front of a WebSocket route, under real uvicorn (the main app has none
    today; any it gets is behind the same middleware)."""
    rules = Rules.of(
        Settings(),
        is_compat=lambda _p: False,
        headers=page_headers(Settings()),
        render=error_response,
    )
    app = Starlette(
        routes=[WebSocketRoute("/ws", _echo_socket)], middleware=[Middleware(Boundary, rules=rules)]
    )
    server = ServerThread(app, name="ws-boundary", ws="websockets-sansio")
    server.start()
    try:
        yield server
    finally:
        server.close()


async def test_a_foreign_origin_websocket_is_refused(socket_server: ServerThread) -> None:
    url = f"ws://127.0.0.1:{socket_server.port}/ws"
    async with websockets.connect(url, origin=websockets.Origin(socket_server.origin)) as ws:
        assert await ws.recv() == "hello"
    async with websockets.connect(url) as ws:  # no Origin: not a browser
        assert await ws.recv() == "hello"
    for origin in (EVIL_PAGE, "null"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url, origin=websockets.Origin(origin)):
                pass
        assert refused.value.response.status_code == 403
    # A rebinding page's handshake names its own host.
    sock = socket.create_connection(("127.0.0.1", socket_server.port))
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect("ws://evil.example/ws", sock=sock):
            pass
    assert refused.value.response.status_code == 403


# -- security headers -------------------------------------------------------------------------


async def test_every_response_has_the_security_headers(anon: httpx.AsyncClient) -> None:
    responses = [
        await anon.get("/"),
        await anon.get("/m"),
        await anon.get("/static/dashboard.js"),
        await anon.get("/api/health"),
        await anon.get("/api/agents"),  # 401
        await anon.get("/api/nowhere"),  # 404
        await anon.get("/api/health", headers={"host": "evil.example"}),  # refused
    ]
    for r in responses:
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"


def test_the_csp_lets_pages_reach_openai_and_livekit() -> None:
    csp = content_security_policy(Settings(livekit_url="wss://demo-abc.livekit.cloud"))
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src "))
    assert connect.split()[1:] == [
        "'self'",
        "https://api.openai.com",  # the BYOK page posts its SDP offer to openai_base_url
        "wss://demo-abc.livekit.cloud",
        "https://demo-abc.livekit.cloud",
        "wss://*.livekit.cloud",  # LiveKit Cloud may move a client to a region's host
        "https://*.livekit.cloud",
    ]
    own = content_security_policy(
        Settings(openai_base_url="http://127.0.0.1:9100/v1", livekit_url="ws://127.0.0.1:7880")
    )
    assert (
        "connect-src 'self' http://127.0.0.1:9100 ws://127.0.0.1:7880 http://127.0.0.1:7880;" in own
    )


# -- the owner token and wrong tokens ---------------------------------------------------------


def test_a_short_owner_token_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32 characters") as refused:
        create_app(Settings(home=tmp_path, owner_token="hunter2-hunter2"), environ={})
    assert "hunter2" not in refused.value.message
    create_app(Settings(home=tmp_path, owner_token="x" * 32), environ={})


async def test_wrong_tokens_are_throttled_per_address_and_good_ones_are_not(
    app: Starlette, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    assert (await client.get("/api/agents")).status_code == 200  # the owner, seen valid
    made = await client.post("/api/keys", json={"name": "ha"})
    key = made.json()["token"]
    for n in range(10):
        r = await anon.get("/api/agents", headers={"authorization": f"Bearer wrong-{n}"})
        assert r.status_code == 401
    r = await anon.get("/api/agents", headers={"authorization": "Bearer wrong-again"})
    assert r.status_code == 429 and code_of(r) == "auth_rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    r = await anon.get("/", params={"token": "guess"})  # the login URL is one more door
    assert r.status_code == 429 and r.headers["retry-after"]
    r = await anon.get("/v1/models", headers={"authorization": "Bearer guess"})
    assert r.status_code == 429 and r.json()["error"]["code"] == "auth_rate_limited"
    assert r.headers["retry-after"]
    # The tokens the hub knows go on working from the same address, at once.
    assert (await client.get("/api/agents")).status_code == 200
    assert (
        await anon.get("/v1/models", headers={"authorization": f"Bearer {key}"})
    ).status_code == 200
    # No token at all is no guess (and a page of another site can send that much).
    assert (await anon.get("/api/agents")).status_code == 401
    # Another address is not held up.
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 50000)), base_url=HUB_URL
    )
    async with other:
        r = await other.get("/api/agents", headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401
    # After the minute, the address may try again.
    limiter = app.state.hub.tokens.failures
    real_clock = limiter.clock
    limiter.clock = lambda: real_clock() + 61
    r = await anon.get("/api/agents", headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401


async def test_parallel_wrong_pairing_codes_cannot_all_pass_the_check(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    """The check and the count are one step: 20 guesses at once get at most 5 looks."""
    assert (await client.post("/api/pairing")).status_code == 201

    async def guess(n: int) -> int:
        r = await anon.post("/api/pairing/claim", json={"code": f"ZZZZ-ZZ{n:02d}"[:9]})
        return r.status_code

    statuses = await asyncio.gather(*(guess(n) for n in range(20)))
    assert statuses.count(400) == 5 and statuses.count(429) == 15, statuses


# -- proxies: X-Forwarded-For believed only from trusted_proxies ------------------------------


@pytest.fixture
def serve_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HIVECALL_HOME": str(tmp_path / "hub"),
        "HIVECALL_OWNER_TOKEN": OWNER,
        "HIVECALL_HIVEMIND_PORT": "0",
    }


def _claims_from_many_addresses(url: str) -> list[int]:
    with httpx.Client(base_url=url) as c:
        return [
            c.post(
                "/api/pairing/claim",
                json={"code": "ZZZZ-ZZZZ"},
                headers={"x-forwarded-for": f"198.51.100.{n}", "x-forwarded-proto": "https"},
            ).status_code
            for n in range(8)
        ]


@pytest.mark.slow
def test_serve_believes_no_forwarded_for_unless_told(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    server = Server(serve_env, tmp_path)
    try:
        # A local page (or process) naming a new address each time is still one address.
        assert _claims_from_many_addresses(server.url) == [400] * 5 + [429] * 3
    finally:
        server.stop()
    server = Server({**serve_env, "HIVECALL_TRUSTED_PROXIES": "127.0.0.1"}, tmp_path)
    try:
        # Behind a proxy the owner named, each forwarded client is its own.
        assert _claims_from_many_addresses(server.url) == [400] * 8
    finally:
        server.stop()


# -- real uvicorn: both listeners --------------------------------------------------------------


@pytest.fixture
def live(tmp_path: Path, environ: dict[str, str], workspace: Path) -> Iterator[LiveHub]:
    compat_port = free_port()
    with contextlib.contextmanager(serve_hub)(
        tmp_path,
        environ=environ,
        workspace=workspace,
        openai_base_url="http://127.0.0.1:9/v1",
        compat_port=compat_port,
        compat_open_agents="echo",
    ) as hub:
        yield hub


def test_both_listeners_refuse_a_rebinding_host_and_browser_pages(live: LiveHub) -> None:
    compat = f"http://127.0.0.1:{live.settings.compat_port}"
    chat: dict[str, Any] = {
        "model": "echo",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }
    with httpx.Client(timeout=10) as c:
        # The attack: a rebinding page's own name, and its fetch() to the open agent.
        for base in (live.url, compat):
            r = c.get(
                f"{base}/api/tags", headers={"host": f"evil.example:{base.rsplit(':', 1)[1]}"}
            )
            assert r.status_code == 421, (base, r.text)
            r = c.post(
                f"{base}/api/chat",
                json=chat,
                headers={"host": "evil.example", "origin": "http://evil.example"},
            )
            assert r.status_code == 421
            r = c.post(f"{base}/api/chat", json=chat, headers={"origin": EVIL_PAGE})
            assert r.status_code == 403
            assert r.headers["x-content-type-options"] == "nosniff"
        # The listener's no-key opt-in still serves LAN clients (no Origin), under its names.
        r = c.post(
            f"{compat}/api/chat",
            json=chat,
            headers={"host": f"localhost:{live.settings.compat_port}"},
        )
        assert r.status_code == 200 and "hi" in r.json()["message"]["content"]
        r = c.get(f"{compat}/", headers={"host": "evil.example"})
        assert r.status_code == 421
        turns = c.get(f"{live.url}/api/turns", headers=live.headers).json()["turns"]
        assert len(turns) == 1
        # The main port's pages and API carry the security headers over the wire too.
        r = c.get(f"{live.url}/m")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "http://127.0.0.1:9" in r.headers["content-security-policy"]
