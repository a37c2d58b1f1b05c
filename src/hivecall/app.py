"""create_app(settings) -> the ASGI app. The hub's parts live in the lifespan."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from hivecall import boundary, compat, openapi
from hivecall.compat.listener import is_api_path
from hivecall.compat.listener import refusal as compat_refusal
from hivecall.errors import HivecallError
from hivecall.http_api import error_response, on_hivecall_error, on_http_error, on_unexpected
from hivecall.hub import Hub
from hivecall.listening import PHONE_URL, phone_url
from hivecall.settings import Settings
from hivecall.web import (
    api,
    calls_api,
    cloud_api,
    mobile,
    pages,
    pairing_api,
    turns_api,
)


def create_app(
    settings: Settings,
    *,
    environ: Mapping[str, str],
    workspace: Path | None = None,
    serve_hivemind: bool = False,
) -> Starlette:
    """The hub as an ASGI app.

    `environ` is handed to agent processes (their own keys and PATH); `workspace` is where
    starter agents work (default: the current directory). `serve_hivemind` starts the
    HiveMind listener on `hivemind_port` (what `hivecall serve` does; tests opt in).
    """
    compat.check(settings)  # the compat listener's settings, refused before anything starts
    boundary.check(settings)
    if serve_hivemind and settings.hivemind_port:
        from hivecall.hivemind.config import check as check_hivemind

        check_hivemind(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub = await Hub.open(settings, environ=environ)
        try:
            await hub.start(workspace=workspace or Path.cwd())
            # For `hivecall pair` in another terminal: the URL phones reach this hub at.
            await hub.store.set_meta(PHONE_URL, phone_url(settings))
            app.state.hub = hub
            if hub.new_owner_token:
                announce_owner_token(settings, hub.new_owner_token)
            # The separate compat listener (compat_port), on this hub; stopped before it closes.
            listener = await compat.Listener.start(hub, settings) if settings.compat_port else None
            hive = None
            try:
                if serve_hivemind and settings.hivemind_port:
                    from hivecall.hivemind.server import HiveMindListener

                    hive = app.state.hivemind = await HiveMindListener.start(hub, settings)
                yield
            finally:
                if hive is not None:
                    await hive.aclose()
                if listener is not None:
                    await listener.aclose()
        finally:
            await hub.aclose()

    headers = boundary.page_headers(settings)
    rules = boundary.Rules.of(settings, is_compat=is_api_path, headers=headers, render=_refusal)
    app = Starlette(
        routes=[
            *compat.routes,  # first: the busiest routes, and routes match in order
            *api.routes,
            *turns_api.routes,
            *calls_api.routes,
            *cloud_api.routes,
            *pairing_api.routes,
            *openapi.routes,
            *pages.routes,
            *mobile.routes,
            Mount("/static", StaticFiles(packages=[("hivecall.web", "static")]), name="static"),
        ],
        exception_handlers={
            HivecallError: on_hivecall_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        middleware=[Middleware(boundary.Boundary, rules=rules)],
        lifespan=lifespan,
    )
    app.state.security_headers = headers
    return app


def _refusal(path: str, status: int, code: str, message: str) -> Response:
    """The boundary's refusals: in the compat API's shapes on its paths, ours elsewhere."""
    if is_api_path(path):
        return compat_refusal(path, status, code, message)
    return error_response(status, code, message)


def freeze_startup_heap() -> None:
    """Keep what exists now (imported modules, the app) out of the cyclic GC's scans.

    Call once in a serving process, after the app is built and before it serves. Python's
    full collections otherwise walk every object the imports made, ~80 ms each, every few
    thousand requests: a quarter of the CPU of a busy hub, and its worst latencies.
    """
    gc.collect()
    gc.freeze()


def announce_owner_token(settings: Settings, token: str) -> None:
    """Shown once on the terminal that started the hub, never written to the log."""
    url = settings.resolved_public_url
    print(
        "\n  hivecall owner token (shown once; `hivecall token reset` makes a new one):\n"
        f"    {token}\n"
        f"  Open the dashboard: {url}/?token={token}\n",
        flush=True,
    )
