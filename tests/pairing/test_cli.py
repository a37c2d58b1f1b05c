"""`hivecall pair` and `hivecall devices …`, run as a person would, next to a running hub."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys

import httpx
import pytest

from hivecall.settings import Settings
from tests.pairing.conftest import claim
from tests.pairing.qr import decode, from_terminal


async def hivecall(
    settings: Settings, *args: str, status: int = 0, public_url: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(settings.home.parent),
        "HIVECALL_HOME": str(settings.home),
        "HIVECALL_DATABASE_URL": settings.database_url,
        "LANG": "C.UTF-8",
    }
    if public_url:
        env["HIVECALL_PUBLIC_URL"] = public_url
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "hivecall", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == status, proc.stderr
    return proc


@pytest.mark.slow
async def test_pair_and_manage_devices_from_the_terminal(
    settings: Settings, client: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    lan = "http://192.168.1.20:8765"
    out = await hivecall(settings, "pair", public_url=lan)
    (code,) = re.findall(r"code: ([0-9A-Z]{4}-[0-9A-Z]{4})", out.stdout)
    url = f"{lan}/m#pair={code.replace('-', '')}"
    assert f"link: {url}" in out.stdout
    assert "works once, for 5:00" in out.stdout
    # The terminal QR code holds the same link; plain HTTP on the LAN warns of speaker-only.
    assert decode(from_terminal(out.stdout)) == [url]
    assert "speaker-only" in out.stderr and "hivecall serve --https" in out.stderr
    secure = await hivecall(settings, "pair", public_url="https://hub.example.net")
    assert "warning" not in secure.stderr and "Trust this hub" not in secure.stdout

    r = await claim(anon, code, "Pixel 8")
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    device = r.json()["device"]
    code2 = re.findall(r"code: (\S+)", (await hivecall(settings, "pair")).stdout)[0]
    assert (await claim(anon, code2, "iPhone")).status_code == 201

    listed = json.loads((await hivecall(settings, "devices", "list", "--json")).stdout)
    assert [(d["name"], d["id"]) for d in listed[:1]] == [("Pixel 8", device["id"])]
    assert [d["name"] for d in listed] == ["Pixel 8", "iPhone"]
    text = (await hivecall(settings, "devices", "list")).stdout
    assert "Pixel 8" in text and device["id"] in text and token not in text

    assert "revoked Pixel 8" in (await hivecall(settings, "devices", "revoke", "Pixel 8")).stdout
    by_id = listed[1]["id"]
    assert "revoked iPhone" in (await hivecall(settings, "devices", "revoke", by_id)).stdout
    gone = await hivecall(settings, "devices", "revoke", "Pixel 8", status=2)
    assert "no paired device 'Pixel 8'" in gone.stderr
    assert (await client.get("/api/devices")).json()["devices"] == []
    assert "No paired phones" in (await hivecall(settings, "devices", "list")).stdout


@pytest.mark.slow
async def test_pair_warns_when_phones_cannot_reach_the_hub(settings: Settings) -> None:
    out = await hivecall(settings, "pair")
    assert "link: http://127.0.0.1:8765/m#pair=" in out.stdout
    assert "--host 0.0.0.0" in out.stderr and "HIVECALL_PUBLIC_URL" in out.stderr
