"""Pairing a phone: codes made by the owner, claimed once by a phone for a device token."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette

from hivecall.auth import hash_token
from hivecall.store.models import PairingCode, Token
from tests.pairing.conftest import claim, hub_of, new_code
from tests.pairing.qr import decode, from_svg

CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


async def test_a_phone_pairs_with_a_code_and_gets_a_device_token(
    app: Starlette, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    before = datetime.now(UTC)
    made = await new_code(client)
    after = datetime.now(UTC)
    pairing = made["pairing"]
    assert CODE.match(pairing["code"]), pairing["code"]
    raw = pairing["code"].replace("-", "")
    assert pairing["url"] == f"http://127.0.0.1:8765/m#pair={raw}"
    assert made["public_url"] == "http://127.0.0.1:8765"
    assert pairing["expires_in"] == 300
    expires = datetime.fromisoformat(pairing["expires_at"])
    assert before + timedelta(seconds=300) <= expires <= after + timedelta(seconds=300)
    # The QR code a phone scans holds exactly that link.
    assert decode(from_svg(made["qr_svg"])) == [pairing["url"]]
    # The hub listens on loopback: the answer says how to reach it from a phone.
    assert "--host 0.0.0.0" in made["hint"] and "HIVECALL_PUBLIC_URL" in made["hint"]
    status = (await client.get(f"/api/pairing/{pairing['id']}")).json()["pairing"]
    assert status["state"] == "waiting" and status["device"] is None

    r = await claim(anon, pairing["code"], "Pixel 8")
    assert r.status_code == 201, r.text
    body = r.json()
    token = body["token"]
    assert token.startswith("hcd_") and len(token) > 40
    assert body["hub"]["url"] == "http://127.0.0.1:8765" and body["hub"]["version"]
    device = body["device"]
    assert device["name"] == "Pixel 8" and device["id"].startswith("dev_")
    assert device["last_seen_at"] is None

    # The token works for what a phone does; the owner sees the device (never its token).
    phone = {"authorization": f"Bearer {token}"}
    r = await anon.get("/api/agents", headers=phone)
    assert r.status_code == 200 and [a["name"] for a in r.json()["agents"]] == ["echo"]
    r = await client.get("/api/devices")
    assert token not in r.text
    (listed,) = r.json()["devices"]
    assert (listed["id"], listed["name"]) == (device["id"], "Pixel 8")
    assert listed["paired_at"] == device["paired_at"] and listed["last_seen_at"]
    status = (await client.get(f"/api/pairing/{pairing['id']}")).json()["pairing"]
    assert status["state"] == "paired" and status["device"]["name"] == "Pixel 8"

    # Only hashes are stored: neither the code nor the token is anywhere in the store.
    hub = hub_of(app)
    async with hub.store.session() as s:
        codes = list(await s.scalars(select(PairingCode)))
        tokens = list(await s.scalars(select(Token).where(Token.kind == "device")))
    (stored,) = codes
    assert raw not in repr(vars(stored)) and stored.device_id == device["id"]
    (row,) = tokens
    assert row.token_hash == hash_token(token) and token not in repr(vars(row))
    assert row.scopes == ["agents:read", "calls"] and row.subject == device["id"]


async def test_a_code_works_once(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    code = (await new_code(client))["pairing"]["code"]
    assert (await claim(anon, code)).status_code == 201
    r = await claim(anon, code, "Second phone")
    assert r.status_code == 410
    assert r.json()["error"]["code"] == "pairing_code_used"
    assert "already used" in r.json()["error"]["message"]
    assert [d["name"] for d in (await client.get("/api/devices")).json()["devices"]] == ["Pixel 8"]


async def test_codes_are_typed_loosely(client: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    """Lower case, spaces instead of the dash, O for 0 and I or L for 1 all work."""
    code = (await new_code(client))["pairing"]["code"]
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    r = await claim(anon, f"  {typed} ")
    assert r.status_code == 201, r.text


async def test_an_expired_code_says_so(
    app: Starlette, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    made = (await new_code(client))["pairing"]
    hub = hub_of(app)
    async with hub.store.session() as s, s.begin():  # as if its lifetime had passed
        await s.execute(
            update(PairingCode)
            .where(PairingCode.id == made["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = await claim(anon, made["code"])
    assert r.status_code == 410 and r.json()["error"]["code"] == "pairing_code_expired"
    status = (await client.get(f"/api/pairing/{made['id']}")).json()["pairing"]
    assert status["state"] == "expired"
    assert (await client.get("/api/devices")).json()["devices"] == []


@pytest.mark.parametrize("hub_settings", [{"pairing_code_ttl": 45}])
async def test_the_lifetime_is_a_setting(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    made = (await new_code(client))["pairing"]
    after = datetime.now(UTC)
    assert made["expires_in"] == 45
    expires = datetime.fromisoformat(made["expires_at"])
    assert before + timedelta(seconds=45) <= expires <= after + timedelta(seconds=45)
    settings = {s["name"]: s for s in (await client.get("/api/settings")).json()["settings"]}
    assert settings["pairing_code_ttl"]["value"] == "45"


async def test_wrong_codes_are_rate_limited_per_address(
    app: Starlette, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    code = (await new_code(client))["pairing"]["code"]
    wrong = "ZZZZ-ZZZZ" if code != "ZZZZ-ZZZZ" else "YYYY-YYYY"
    for guess in (wrong, "nonsense", wrong, "0000 0000", wrong):
        r = await claim(anon, guess)
        assert r.status_code == 400 and r.json()["error"]["code"] == "pairing_code_invalid"
    # The sixth try within the minute is refused before the code is even looked at.
    r = await claim(anon, code)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "pairing_rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60

    # Another address is not held up by this one.
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 50000)),
        base_url="http://127.0.0.1:8765",
    )
    async with other:
        assert (await claim(other, wrong)).status_code == 400

    # Once the minute has passed, the right code works from the first address.
    limiter = hub_of(app).pairing.limiter
    real_clock = limiter.clock
    limiter.clock = lambda: real_clock() + 61
    r = await claim(anon, code)
    assert r.status_code == 201, r.text


async def test_same_names_are_told_apart_and_names_are_cleaned(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    for name in ("Pixel 8", "Pixel 8", "  Bad\x00 \x1bname\n ", ""):
        code = (await new_code(client))["pairing"]["code"]
        assert (await claim(anon, code, name)).status_code == 201
    names = [d["name"] for d in (await client.get("/api/devices")).json()["devices"]]
    assert names == ["Pixel 8", "Pixel 8 (2)", "Bad name", "Phone"]


async def test_bad_claims_change_nothing(
    client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    for body in ({}, {"code": ""}, {"code": "ABCD-EFGH", "extra": 1}, {"code": 5}):
        r = await anon.post("/api/pairing/claim", json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", body
    r = await client.get("/api/pairing/pair_nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "pairing_not_found"
    assert (await client.get("/api/devices")).json()["devices"] == []


async def test_revoking_a_device_bites_at_once(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, pair_phone: Any
) -> None:
    phone = await pair_phone("Pixel 8")
    other = await pair_phone("iPhone")
    # Both tokens are verified (and cached) before the revocation.
    assert (await phone.client.get("/api/agents")).status_code == 200
    assert (await other.client.get("/api/agents")).status_code == 200

    r = await client.delete(f"/api/devices/{phone.id}")
    assert r.status_code == 200 and r.json()["revoked"]["name"] == "Pixel 8"
    r = await phone.client.get("/api/agents")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert (await other.client.get("/api/agents")).status_code == 200
    names = [d["name"] for d in (await client.get("/api/devices")).json()["devices"]]
    assert names == ["iPhone"]
    r = await client.delete(f"/api/devices/{phone.id}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "device_not_found"
    # By name too.
    assert (await client.delete("/api/devices/iPhone")).status_code == 200
    assert (await other.client.get("/api/agents")).status_code == 401


async def test_a_plain_http_lan_url_warns_that_calls_will_be_speaker_only(
    app: Starlette, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    hub.settings = hub.settings.replace(public_url="http://192.168.1.20:8765/")
    made = await new_code(client)
    assert made["public_url"] == "http://192.168.1.20:8765" and made["https"] is None
    assert "speaker-only" in made["hint"] and "hivecall serve --https" in made["hint"]
    url = made["pairing"]["url"]
    assert url.startswith("http://192.168.1.20:8765/m#pair=")
    assert decode(from_svg(made["qr_svg"])) == [url]
    r = await claim(anon, made["pairing"]["code"])
    assert r.json()["hub"]["url"] == "http://192.168.1.20:8765"


async def test_an_https_url_of_its_own_needs_no_hint_and_no_trust_step(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    # A reverse proxy or tunnel with a real certificate: nothing for the phone to trust first.
    hub = hub_of(app)
    hub.settings = hub.settings.replace(public_url="https://hub.example.net")
    made = await new_code(client)
    assert made["hint"] is None and made["https"] is None
    assert made["pairing"]["url"].startswith("https://hub.example.net/m#pair=")


async def test_codes_and_tokens_stay_out_of_logs(
    client: httpx.AsyncClient, anon: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = (await new_code(client))["pairing"]
    await claim(anon, "ZZZZ-ZZZY")
    token = (await claim(anon, made["code"])).json()["token"]
    await client.delete("/api/devices/Pixel 8")
    records: list[Any] = caplog.records
    assert any(r.getMessage() == "device paired" for r in records)
    everything = "\n".join(f"{r.getMessage()} {vars(r)}" for r in records)
    for secret in (token, made["code"], made["code"].replace("-", "")):
        assert secret not in everything
