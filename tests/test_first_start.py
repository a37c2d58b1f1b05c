"""On the very first start the hub offers an agent for each coding CLI on PATH."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("codex", "goose"):
        exe = bin_dir / name
        exe.write_text(f"#!{sys.executable}\nprint('{name} says hi')\n")
        exe.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


async def test_agents_for_clis_on_path(client: httpx.AsyncClient, workspace: Path) -> None:
    agents = (await client.get("/api/agents")).json()["agents"]
    assert sorted(a["name"] for a in agents) == ["codex", "goose"]
    codex = next(a for a in agents if a["name"] == "codex")
    assert codex["preset"] == "codex" and codex["command"] == ["codex", "exec", "--", "{message}"]
    assert codex["workspace"] == str(workspace) and codex["status"] == "ready"
    r = await client.post("/api/phone", json={"agent_id": "codex", "message": "hello"})
    assert r.json() == r.json() | {"ok": True, "text": "codex says hi"}


async def test_seeding_happens_once(client: httpx.AsyncClient) -> None:
    for name in ("codex", "goose"):
        assert (await client.delete(f"/api/agents/{name}")).status_code == 200
    hub = client._transport.app.state.hub  # type: ignore[attr-defined]
    assert await hub.seed_agents(workspace=Path("/")) == []
    assert (await client.get("/api/agents")).json()["agents"] == []
