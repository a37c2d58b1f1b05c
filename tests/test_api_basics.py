"""The API's skeleton: health, auth, the one error shape, bad bodies."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from hivecall.auth import Tokens
from hivecall.settings import Settings
from hivecall.store import Store
from tests.conftest import HUB_URL, OWNER


async def test_health_needs_no_token(anon: httpx.AsyncClient) -> None:
    r = await anon.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True and body["database"] in ("sqlite", "postgresql")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/agents"),
        ("POST", "/api/agents"),
        ("GET", "/api/turns"),
        ("POST", "/api/phone"),
        ("POST", "/api/chat/agent-runtime"),
        ("GET", "/api/settings"),
    ],
)
async def test_api_routes_need_a_token(anon: httpx.AsyncClient, method: str, path: str) -> None:
    r = await anon.request(method, path, json={})
    assert r.status_code == 401
    assert r.json() == {"error": {"code": "unauthorized", "message": r.json()["error"]["message"]}}
    r = await anon.request(method, path, json={}, headers={"authorization": "Bearer nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


async def test_error_shape_is_stable(client: httpx.AsyncClient) -> None:
    for r in (
        await client.get("/api/agents/nobody"),
        await client.get("/api/nowhere"),
        await client.post(
            "/api/phone", content=b"{not json", headers={"content-type": "application/json"}
        ),
        await client.delete("/api/health"),
    ):
        body = r.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message"}
        assert body["error"]["message"]
    assert (await client.get("/api/agents/nobody")).json()["error"]["code"] == "agent_not_found"
    assert (await client.get("/api/nowhere")).status_code == 404


async def test_oversized_body_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/agents", content=b"{" + b" " * 2_000_000 + b"}")
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_login_url_sets_a_session_cookie(anon: httpx.AsyncClient) -> None:
    r = await anon.get("/", params={"token": "wrong"})
    assert r.status_code == 401
    r = await anon.get("/", params={"token": OWNER})
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.cookies["hivecall_session"]
    assert cookie and OWNER not in r.headers["set-cookie"]
    anon.cookies.set("hivecall_session", cookie)
    assert (await anon.get("/api/agents")).status_code == 200
    # A browser says where a signed-in POST comes from (boundary.py).
    assert (await anon.post("/api/logout", headers={"origin": HUB_URL})).status_code == 200
    anon.cookies.set("hivecall_session", cookie)  # a browser that kept it anyway
    assert (await anon.get("/api/agents")).status_code == 401


async def test_settings_never_show_secrets(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/settings")
    assert r.status_code == 200
    assert OWNER not in r.text
    rows = {s["name"]: s for s in r.json()["settings"]}
    assert rows["owner_token"]["value"] is True
    assert rows["openai_api_key"]["value"] is False


async def test_revocation_by_another_process_bites(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await client.get("/api/agents")).status_code == 200
    # The CLI is another process with its own cache: it resets the owner token in the store.
    other = Store(url=settings.resolved_database_url)
    new = await Tokens(store=other).reset_owner()
    await other.aclose()
    monkeypatch.setattr("hivecall.auth.CACHE_FOR", timedelta(0))  # skip the 2 s grace
    assert (await client.get("/api/agents")).status_code == 401
    r = await client.get("/api/agents", headers={"authorization": f"Bearer {new}"})
    assert r.status_code == 200
