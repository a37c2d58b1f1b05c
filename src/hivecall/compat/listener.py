"""The compat listener: a second port that serves only the OpenAI- and Ollama-compatible API.

The main port serves the compat routes too (`/v1/…`, `/api/tags`, `/api/chat`, …, next to
hivecall's own `/api/…`). The listener exists for clients that expect a bare model server:
its paths are only those of the two APIs (plus Ollama's `GET /` "Ollama is running"), it can
listen on another address than the dashboard (e.g. the LAN, at Ollama's port 11434), and it is
the only place where the owner may let clients in without a key: `compat_open_agents` names the
agents an anonymous client may use there. That opt-in is announced loudly at every start.

Like the main app it runs the browser boundary (boundary.py): it answers only to the hub's
names (no DNS rebinding) and refuses web pages (any Origin not in compat_allowed_origins), so the
no-key opt-in is for LAN clients, never for a page a LAN browser happens to open.

It runs in the hub's process and event loop, on the hub the main app opened, from the app's
lifespan: it starts once the hub is ready and stops before the hub closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hivecall.agents.records import NAME
from hivecall.boundary import API_HEADERS, Boundary, Rules, proxy_options
from hivecall.compat.access import Gate
from hivecall.compat.ollama import OllamaRoutes
from hivecall.compat.openai import OpenAIRoutes
from hivecall.compat.shapes import flavour_of, ollama_error, on_http_error, openai_error
from hivecall.errors import ConfigError, NotFound
from hivecall.hub import Hub
from hivecall.settings import Settings

log = logging.getLogger(__name__)

STOP_SECONDS = 5


def open_agents(settings: Settings) -> frozenset[str]:
    return frozenset(n.strip() for n in settings.compat_open_agents.split(",") if n.strip())


def check(settings: Settings) -> None:
    """Refuse compat settings that do not make sense together (before anything starts)."""
    names = open_agents(settings)
    bad = sorted(n for n in names if not NAME.match(n))
    if bad:
        raise ConfigError(f"compat_open_agents: {', '.join(bad)} is not an agent name")
    if not 0 <= settings.compat_port <= 65535:
        raise ConfigError("compat_port must be between 0 and 65535")
    if names and not settings.compat_port:
        raise ConfigError(
            "compat_open_agents only applies to the compat listener: set compat_port too"
        )
    if settings.compat_port and settings.compat_port == settings.port:
        raise ConfigError("compat_port must differ from port")


def routes(gate: Gate) -> list[Route]:
    return [*OpenAIRoutes(gate).routes(), *OllamaRoutes(gate).routes()]


_OLLAMA_PATHS = frozenset(r.path for r in OllamaRoutes(Gate()).routes())


def is_api_path(path: str) -> bool:
    """The two APIs' paths (OpenAI's /v1/…, Ollama's /api/tags, /api/chat, …), on either port."""
    return path == "/v1" or path.startswith("/v1/") or path in _OLLAMA_PATHS


def refusal(path: str, status: int, code: str, message: str) -> Response:
    """A boundary refusal (boundary.py) in the shape the path's clients read."""
    if flavour_of(path) == "openai":
        return openai_error(status, code, message)
    return ollama_error(status, message)


async def running(_request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


def create_compat_app(hub: Hub, settings: Settings) -> Starlette:
    """The listener's ASGI app: the two APIs' paths only, on the hub `hub`."""
    rules = Rules.of(settings, is_compat=lambda _path: True, headers=API_HEADERS, render=refusal)
    app = Starlette(
        routes=[
            Route("/", running, methods=["GET", "HEAD"]),
            *routes(Gate(open_agents=open_agents(settings))),
        ],
        exception_handlers={HTTPException: on_http_error},
        middleware=[Middleware(Boundary, rules=rules)],
    )
    app.state.hub = hub
    return app


class Listener:
    """A uvicorn server for the compat app inside the running event loop (no signal handlers:
    the main server owns those and stops this one through the lifespan)."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        self._task: asyncio.Task[None] | None = None
        self.port: int = sock.getsockname()[1]

    @classmethod
    async def start(cls, hub: Hub, settings: Settings) -> Listener:
        host = settings.compat_host or settings.host
        sock = _bind(host, settings.compat_port)
        config = uvicorn.Config(
            create_compat_app(hub, settings),
            log_config=None,  # the hub's logging is set up already; leave it as it is
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=STOP_SECONDS,
            **proxy_options(settings),
        )
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        listener = cls(server, sock)
        listener._task = asyncio.create_task(server.main_loop(), name="compat-listener")
        url = f"http://{_shown(host)}:{listener.port}"
        log.info("compat listener started", extra={"url": url})
        await _announce_open(hub, url, open_agents(settings))
        return listener

    async def aclose(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._server.shutdown(sockets=[self._sock])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"the compat listener cannot listen on {host}:{port}: {e}") from e
    return sock


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _announce_open(hub: Hub, url: str, names: frozenset[str]) -> None:
    """Every start with the no-key opt-in says so, on the terminal and in the log."""
    if not names:
        return
    missing: list[str] = []
    for name in sorted(names):
        try:
            await hub.agents.get(name)
        except NotFound:
            missing.append(name)
    lines = [
        "",
        "  " + "!" * 78,
        f"  WARNING: {url} answers WITHOUT an API key for: {', '.join(sorted(names))}",
        "  Anyone who can reach that address can talk to these agents and run their turns.",
        "  Remove them from compat_open_agents (HIVECALL_COMPAT_OPEN_AGENTS) to require keys.",
    ]
    if missing:
        lines.append(f"  (no agent is called {', '.join(missing)} yet)")
    lines += ["  " + "!" * 78, ""]
    print("\n".join(lines), file=sys.stderr, flush=True)
    log.warning(
        "compat listener serves agents without an API key",
        extra={"url": url, "agents": sorted(names), "missing": missing},
    )
