"""Settings the dashboard edits: the OpenAI key (never shown back, sealed at rest), voice,
model and the default call mode; values the environment pins are refused."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette

from hivecall.app import create_app
from hivecall.settings import Settings
from tests.conftest import owner_client
from tests.keys import FAKE_OPENAI_KEY, REPLACEMENT_OPENAI_KEY
from tests.standins.realtime.server import RealtimeStandin

NEW_KEY = REPLACEMENT_OPENAI_KEY


def by_name(body: dict[str, list[dict[str, object]]]) -> dict[str, dict[str, object]]:
    return {s["name"]: s for s in body["settings"]}  # type: ignore[misc]


async def test_the_key_is_set_replaced_and_removed_without_showing_it(
    app: Starlette, client: httpx.AsyncClient, settings: Settings, realtime: RealtimeStandin
) -> None:
    realtime.api_key = NEW_KEY
    r = await client.patch("/api/settings", json={"openai_api_key": NEW_KEY})
    assert r.status_code == 200 and NEW_KEY not in r.text
    key = by_name(r.json())["openai_api_key"]
    assert key["value"] is True and key["source"] == "dashboard"
    # The new key is used at once, for minting…
    assert (await client.post("/api/calls", json={"agent_id": "echo"})).status_code == 201
    # …and sealed in the store: the database file never holds it in clear.
    db = (
        Path(settings.resolved_database_url.split("///", 1)[1])
        if "sqlite" in (settings.resolved_database_url)
        else None
    )
    if db is not None:
        for f in db.parent.glob(db.name + "*"):
            assert NEW_KEY.encode() not in f.read_bytes()
    # Removing the dashboard's key falls back to the configured one.
    r = await client.patch("/api/settings", json={"openai_api_key": None})
    key = by_name(r.json())["openai_api_key"]
    assert key["value"] is True and key["source"] == "config"
    assert app.state.hub.settings.openai_api_key == FAKE_OPENAI_KEY


async def test_dashboard_values_survive_a_restart(
    settings: Settings, environ: dict[str, str], workspace: Path
) -> None:
    for round_ in range(2):
        app = create_app(settings.replace(openai_api_key=""), environ=environ, workspace=workspace)
        async with (
            app.router.lifespan_context(app),
            owner_client(app) as c,
        ):
            if round_ == 0:
                r = await c.patch(
                    "/api/settings",
                    json={
                        "openai_api_key": NEW_KEY,
                        "realtime_voice": "cedar",
                        "default_call_mode": "byok",
                    },
                )
                assert r.status_code == 200, r.text
            else:
                hub = app.state.hub
                assert hub.settings.openai_api_key == NEW_KEY
                assert hub.settings.realtime_voice == "cedar"
                modes = (await c.get("/api/calls/modes")).json()
                assert modes["default"] == "byok"


async def test_bad_values_are_refused_and_change_nothing(client: httpx.AsyncClient) -> None:
    for patch in (
        {"openai_api_key": "short"},
        {"openai_api_key": "sk-has a space in it 0123456789"},
        {"realtime_voice": "Not A Voice!"},
        {"default_call_mode": "carrier-pigeon"},
        {"port": 1},
    ):
        r = await client.patch("/api/settings", json=patch)
        assert r.status_code == 400, patch
        assert r.json()["error"]["code"] == "invalid_request"
    s = by_name((await client.get("/api/settings")).json())
    assert s["realtime_voice"]["value"] == "marin" and s["default_call_mode"]["value"] == "auto"


async def test_the_environment_pins_a_setting(
    settings: Settings, environ: dict[str, str], workspace: Path
) -> None:
    env = {**environ, "OPENAI_API_KEY": FAKE_OPENAI_KEY}
    app = create_app(settings, environ=env, workspace=workspace)
    async with (
        app.router.lifespan_context(app),
        owner_client(app) as c,
    ):
        key = by_name((await c.get("/api/settings")).json())["openai_api_key"]
        assert key["source"] == "environment"
        r = await c.patch(
            "/api/settings", json={"openai_api_key": NEW_KEY, "realtime_voice": "ash"}
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "setting_pinned"
        assert "OPENAI_REALTIME_KEY" in r.json()["error"]["message"]
        assert NEW_KEY not in r.text
        voice = by_name((await c.get("/api/settings")).json())["realtime_voice"]
        assert voice["value"] == "marin"


async def test_key_test_reports_whether_a_key_works(
    client: httpx.AsyncClient, realtime: RealtimeStandin
) -> None:
    r = await client.post("/api/settings/openai-key/test")
    assert r.status_code == 200 and r.json() == {"ok": True, "model": "gpt-realtime"}
    r = await client.post("/api/settings/openai-key/test", json={"openai_api_key": NEW_KEY})
    assert r.status_code == 502 and r.json()["error"]["code"] == "openai_key_rejected"
    assert NEW_KEY not in r.text
