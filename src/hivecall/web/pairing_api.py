"""Phones: pairing codes (owner), the claim a phone makes with one (no token), paired devices."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hivecall import __version__
from hivecall.http_api import authed, client_address, hub_of, ok, read_json
from hivecall.listening import phone_url
from hivecall.pairing import lan_hint, qr_svg, trust_step

log = logging.getLogger(__name__)


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64)
    device_name: str = Field(default="", max_length=200)


async def pairing_create(request: Request) -> Response:
    """A new pairing code: its text, the URL a phone opens and that URL as a QR code (once)."""
    who = await authed(request)
    hub = hub_of(request)
    public_url = phone_url(hub.settings)
    made = await hub.pairing.create(
        ttl=hub.settings.pairing_code_ttl, public_url=public_url, created_by=who.token_id
    )
    log.info("pairing code created", extra={"pairing_id": made.id, "ttl": made.ttl})
    return ok(
        {
            "pairing": made.public(),
            "qr_svg": qr_svg(made.url),
            "public_url": public_url,
            "hint": lan_hint(public_url),
            # With the hub's own HTTPS: trust its CA first (a QR of /ca.crt), else null.
            "https": step.public() if (step := trust_step(hub.settings, public_url)) else None,
        },
        201,
    )


async def pairing_status(request: Request) -> Response:
    await authed(request)
    return ok({"pairing": await hub_of(request).pairing.status(request.path_params["id"])})


async def pairing_claim(request: Request) -> Response:
    """The phone trades a code for its device token (shown once). No token needed."""
    hub = hub_of(request)
    body = await read_json(request, Claim)
    # The connection's peer: X-Forwarded-For counts only from trusted_proxies (serving.py).
    source = client_address(request)
    token, device = await hub.pairing.claim(body.code, body.device_name, source=source)
    log.info("device paired", extra={"device_id": device.id})
    return ok(
        {
            "token": token,
            "device": device.public(),
            "hub": {"url": phone_url(hub.settings), "version": __version__},
        },
        201,
    )


async def devices_list(request: Request) -> Response:
    await authed(request)
    devices = await hub_of(request).pairing.devices()
    return ok({"devices": [d.public() for d in devices]})


async def devices_revoke(request: Request) -> Response:
    await authed(request)
    device = await hub_of(request).pairing.revoke(request.path_params["id"])
    log.info("device revoked", extra={"device_id": device.id})
    return ok({"revoked": device.public()})


routes = [
    Route("/api/pairing", pairing_create, methods=["POST"]),
    Route("/api/pairing/claim", pairing_claim, methods=["POST"]),
    Route("/api/pairing/{id}", pairing_status, methods=["GET"]),
    Route("/api/devices", devices_list, methods=["GET"]),
    Route("/api/devices/{id}", devices_revoke, methods=["DELETE"]),
]
