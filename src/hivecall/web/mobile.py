"""The mobile web app (`/m`): pair a phone, pick an agent, call it. Installable as a PWA.

Its files live in `static/m/`; it reuses the dashboard's `api.js`, `call.js` and
`callmodal.js`, with the device token (kept in the phone's localStorage) as the bearer. Its
service worker (`/m/sw.js`, scope `/m`) keeps the app's shell for when the hub is unreachable.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from hivecall import __version__

MOBILE = resources.files("hivecall.web") / "static" / "m"
THEME = "#0f1115"

MANIFEST: dict[str, Any] = {
    "id": "/m",
    "name": "hivecall",
    "short_name": "hivecall",
    "description": "Call the AI agents on your computer.",
    "start_url": "/m",
    "scope": "/m",
    "display": "standalone",
    "orientation": "portrait",
    "background_color": THEME,
    "theme_color": THEME,
    "icons": [
        {"src": "/static/m/icon-192.png", "sizes": "192x192", "type": "image/png"},
        {"src": "/static/m/icon-512.png", "sizes": "512x512", "type": "image/png"},
        {"src": "/static/icon.svg", "sizes": "any", "type": "image/svg+xml"},
    ],
}

# The page is the same for everyone; what it shows depends on the token the phone holds.
NO_STORE = {"cache-control": "no-cache"}


async def app_page(request: Request) -> Response:
    return HTMLResponse((MOBILE / "index.html").read_text(), headers=NO_STORE)


async def slash(request: Request) -> Response:
    return RedirectResponse("/m", status_code=308)


async def manifest(request: Request) -> Response:
    return JSONResponse(MANIFEST, media_type="application/manifest+json")


def service_worker_script() -> str:
    """sw.js with this hub's version in its cache name: a new hub, new bytes, a new shell."""
    return (MOBILE / "sw.js").read_text().replace("__HUB_VERSION__", __version__)


async def service_worker(request: Request) -> Response:
    # At /m/sw.js its scope could only be /m/; the app itself is /m, which the header allows.
    return Response(
        service_worker_script(),
        media_type="text/javascript",
        headers={"service-worker-allowed": "/m", **NO_STORE},
    )


routes = [
    Route("/m", app_page, methods=["GET"]),
    Route("/m/", slash, methods=["GET"]),
    Route("/m/manifest.webmanifest", manifest, methods=["GET"]),
    Route("/m/sw.js", service_worker, methods=["GET"]),
]
