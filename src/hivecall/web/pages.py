"""Pages for people: the login URL, the dashboard shell and the hub's CA certificate."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from hivecall import tls
from hivecall.auth import SESSION_COOKIE, SESSION_TTL
from hivecall.errors import NotFound, TooManyRequests
from hivecall.http_api import authed, client_address, hub_of, ok

STATIC = resources.files("hivecall.web") / "static"
# What Android and iOS offer to install as a CA certificate.
CA_MEDIA_TYPE = "application/x-x509-ca-cert"


async def index(request: Request) -> Response:
    """The dashboard. `/?token=…` (the login URL) trades the owner token for a session cookie."""
    token = request.query_params.get("token")
    if token:
        hub = hub_of(request)
        failed = (STATIC / "login-failed.html").read_text()
        try:
            principal = await hub.tokens.authenticate(token, source=client_address(request))
        except TooManyRequests as e:
            return HTMLResponse(failed, status_code=e.status, headers=e.headers())
        if principal is None or principal.kind != "owner":
            return HTMLResponse(failed, status_code=401)
        value, _ = await hub.tokens.create(
            kind="session", scopes=principal.scopes, name="browser", ttl=SESSION_TTL
        )
        # Redirect so the owner token leaves the address bar and the history.
        response: Response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=int(SESSION_TTL.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response
    return HTMLResponse((STATIC / "index.html").read_text())


async def logout(request: Request) -> Response:
    principal = await authed(request, "agents:read")
    hub = hub_of(request)
    if principal.kind == "session":
        await hub.tokens.revoke(principal.token_id)
    response = ok({"ok": True})
    response.delete_cookie(SESSION_COOKIE)
    return response


async def ca_certificate(request: Request) -> Response:
    """The hub's CA certificate, for phones to trust its HTTPS (public, like any certificate;
    its private key never leaves HOME/tls)."""
    settings = hub_of(request).settings
    cert = tls.inspect(settings) if settings.https else None
    if cert is None or cert.ca is None:
        raise NotFound(
            "this hub has no certificate authority of its own: HTTPS is off or uses tls_cert",
            code="no_ca",
        )
    return Response(
        cert.ca.read_bytes(),
        media_type=CA_MEDIA_TYPE,
        headers={"content-disposition": 'attachment; filename="hivecall-ca.crt"'},
    )


async def favicon(request: Request) -> Response:
    return RedirectResponse("/static/icon.svg", status_code=308)


routes = [
    Route("/", index, methods=["GET"]),
    Route("/favicon.ico", favicon, methods=["GET"]),
    Route("/ca.crt", ca_certificate, methods=["GET"]),
    Route("/api/logout", logout, methods=["POST"]),
]
