"""Without the speech extra, local calls are unavailable with the install command, and BYOK
calls still work (the calls conftest gives the hub a key and the Realtime stand-in)."""

from __future__ import annotations

import importlib.util
from typing import Any

import httpx
import pytest

from hivecall.speech import models
from hivecall.speech.models import INSTALL


@pytest.fixture
def without_piper(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "piper" else real(name, *args)

    monkeypatch.setattr(models, "_installed", False)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.usefixtures("without_piper")
async def test_without_the_extra_local_is_unavailable_and_byok_still_works(
    client: httpx.AsyncClient,
) -> None:
    modes = {m["mode"]: m for m in (await client.get("/api/calls/modes")).json()["modes"]}
    assert modes["byok"]["available"] is True
    assert modes["local"]["available"] is False
    assert modes["local"]["code"] == "local_unavailable"
    assert INSTALL in modes["local"]["reason"]

    agent = (await client.get("/api/agents")).json()["agents"][0]
    r = await client.post("/api/calls", json={"agent_id": agent["id"], "mode": "local"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "local_unavailable"
    assert (await client.get("/api/calls")).json()["calls"] == []
    r = await client.post("/api/calls", json={"agent_id": agent["id"]})
    assert r.status_code == 201 and r.json()["call"]["mode"] == "byok"
