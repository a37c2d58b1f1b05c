"""Agents over the API: CRUD, validation, the call-capable list, context."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.conftest import script


async def test_first_start_offers_the_echo_agent(client: httpx.AsyncClient) -> None:
    agents = (await client.get("/api/agents")).json()["agents"]
    assert [a["name"] for a in agents] == ["echo"]
    a = agents[0]
    assert {"id", "name", "runtime", "machine", "workspace", "status"} <= set(a)
    assert a["runtime"] == "echo" and a["status"] == "ready" and a["machine"]


async def test_create_show_update_delete(client: httpx.AsyncClient, workspace: Path) -> None:
    r = await client.post(
        "/api/agents",
        json={
            "name": "builder",
            "command": script("fake_agent.py") + " {message}",
            "workspace": str(workspace),
            "machine": "studio",
            "skills": ["python", "  ", "deploys"],
            "description": "builds things",
        },
    )
    assert r.status_code == 201, r.text
    agent = r.json()["agent"]
    assert agent["runtime"] == "command" and agent["preset"] is None
    assert agent["command"][-1] == "{message}" and agent["skills"] == ["python", "deploys"]
    assert agent["workspace"] == str(workspace.resolve())

    by_name = (await client.get("/api/agents/builder")).json()["agent"]
    assert by_name == (await client.get(f"/api/agents/{agent['id']}")).json()["agent"]

    r = await client.patch(f"/api/agents/{agent['id']}", json={"name": "maker", "skills": []})
    assert r.status_code == 200, r.text
    assert r.json()["agent"]["name"] == "maker" and r.json()["agent"]["skills"] == []
    assert r.json()["agent"]["command"] == agent["command"]

    r = await client.patch("/api/agents/maker", json={"runtime": "echo"})
    assert r.json()["agent"]["runtime"] == "echo" and r.json()["agent"]["command"] == []

    assert (await client.delete("/api/agents/maker")).json() == {"deleted": agent["id"]}
    assert (await client.get("/api/agents/maker")).status_code == 404


async def test_preset_runtime_means_command_with_its_argv(
    client: httpx.AsyncClient, workspace: Path
) -> None:
    # No `claude` on the test PATH: the preset is understood, then the missing CLI is reported.
    r = await client.post(
        "/api/agents", json={"name": "cc", "runtime": "claude", "workspace": str(workspace)}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "command_not_found"
    assert "claude" in r.json()["error"]["message"]


async def test_bad_agents_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("x")
    cases = [
        ({"name": "bad name!"}, "invalid_request"),
        ({"name": "x", "runtime": "telepathy"}, "invalid_runtime"),
        ({"name": "x", "runtime": "command"}, "invalid_command"),
        ({"name": "x", "command": "no-such-binary-xyz {message}"}, "command_not_found"),
        ({"name": "x", "command": "python3 'unterminated"}, "invalid_command"),
        ({"name": "x", "command": "python3 {message} {message}"}, "invalid_command"),
        ({"name": "x", "runtime": "openai_chat", "model": "m"}, "invalid_agent"),
        (
            {"name": "x", "runtime": "openai_chat", "base_url": "ftp://x", "model": "m"},
            "invalid_agent",
        ),
        (
            {"name": "x", "runtime": "echo", "workspace": str(tmp_path / "file")},
            "workspace_not_found",
        ),
        (
            {"name": "x", "runtime": "echo", "workspace": str(tmp_path / "nope")},
            "workspace_not_found",
        ),
        ({"name": "x", "runtime": "echo", "command": "python3"}, "invalid_agent"),
        ({"name": "x", "colour": "blue"}, "invalid_request"),
        ({"name": "echo"}, "agent_exists"),
    ]
    for body, code in cases:
        r = await client.post("/api/agents", json=body)
        assert r.status_code in (400, 409), (body, r.text)
        assert r.json()["error"]["code"] == code, (body, r.text)
    names = [a["name"] for a in (await client.get("/api/agents")).json()["agents"]]
    assert names == ["echo"]
    r = await client.patch("/api/agents/echo", json={"workspace": str(tmp_path / "nope")})
    assert r.json()["error"]["code"] == "workspace_not_found"
    assert (await client.get("/api/agents/echo")).json()["agent"]["workspace"] is None


async def test_context_has_repo_memory_and_recent_turns_without_secrets(
    client: httpx.AsyncClient, workspace: Path
) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=workspace, check=True)
    (workspace / "AGENTS.md").write_text(
        "Use pytest for tests.\nOPENAI_API_KEY=sk-live-abcdefghijklmnopqrstu\nKeep answers short.\n"
    )
    (workspace / "memory").mkdir()
    (workspace / "memory" / "notes.md").write_text("Deploys happen on Fridays.\n" + "x" * 5000)
    subprocess.run([*git, "add", "AGENTS.md"], cwd=workspace, check=True)
    subprocess.run([*git, "commit", "-qm", "add agent notes"], cwd=workspace, check=True)
    (workspace / "dirty.py").write_text("print(1)\n")
    await client.post(
        "/api/agents",
        json={"name": "ctx", "runtime": "echo", "workspace": str(workspace), "skills": ["git"]},
    )
    await client.post("/api/phone", json={"agent_id": "ctx", "message": "first request"})
    r = await client.get("/api/agents/ctx/context")
    assert r.status_code == 200
    ctx = r.json()["context"]
    assert ctx["repo"]["branch"] == "main"
    assert any("add agent notes" in c for c in ctx["repo"]["commits"])
    assert "dirty.py" in ctx["repo"]["dirty"]
    memory = {m["path"]: m for m in ctx["memory"]}
    assert "Use pytest" in memory["AGENTS.md"]["text"]
    assert "Keep answers short." in memory["AGENTS.md"]["text"]
    assert memory["memory/notes.md"]["truncated"] is True
    assert ctx["skills"] == ["git"]
    assert [t["message"] for t in ctx["recent"]] == ["first request"]
    assert "sk-live" not in r.text
