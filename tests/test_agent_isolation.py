"""What an agent process can reach: only its allowlisted environment, its own sealed keys, its
own caller's session, its message as an argument (never an option). And agents a killed hub
left running are stopped when the next one starts.

Every test runs through the real app on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from starlette.applications import Starlette

from hivecall.agents.records import AgentCreate, AgentRecord
from hivecall.app import create_app
from hivecall.auth import Principal
from hivecall.hub import Hub
from hivecall.runtimes import TurnInput
from hivecall.runtimes.command import build_argv, session_uuid
from hivecall.runtimes.orphans import orphan_groups
from hivecall.runtimes.presets import PRESETS
from hivecall.runtimes.runner import alive as runner_alive
from hivecall.runtimes.runner import process_start
from hivecall.settings import Settings
from hivecall.store import Store
from hivecall.store.models import Agent, Meta, Turn
from hivecall.turns.ids import new_id
from tests.conftest import SCRIPTS, script
from tests.keys import FAKE_OPENAI_KEY, LIVEKIT_API_SECRET

DB_URL_SECRET = "pg-password-in-the-database-url"
AGENT_OWN_KEY = "sk-agent-own-key-for-aider-0123456789"


@pytest.fixture
def environ(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The hub's environment as a real user has it: full of the hub's own secrets."""
    return {
        **environ,
        "HOME": str(tmp_path),
        "HIVECALL_OWNER_TOKEN": "owner-token-that-agents-must-never-see-0123",
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        "LIVEKIT_API_SECRET": LIVEKIT_API_SECRET,
        "HIVECALL_DATABASE_URL": f"postgresql://hub:{DB_URL_SECRET}@127.0.0.1/hub",
        "ANTHROPIC_API_KEY": "anthropic-key-the-record-may-pass",
        "UNRELATED_TOOL_TOKEN": "not-named-by-the-record",
    }


async def add(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/api/agents", json=body)


async def env_seen(client: httpx.AsyncClient, agent: str) -> dict[str, str]:
    r = await client.post("/api/phone", json={"agent_id": agent, "message": "show env"})
    assert r.status_code == 200 and r.json()["ok"], r.text
    turn = (await client.get(f"/api/turns/{r.json()['turn_id']}")).json()["turn"]
    return dict(json.loads(turn["reply"]))


PRINT_ENV = f"{sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))'"


# -- the environment ---------------------------------------------------------------------------


async def test_an_agent_gets_the_allowlist_and_what_its_record_names(
    client: httpx.AsyncClient, workspace: Path, environ: dict[str, str]
) -> None:
    r = await add(
        client,
        name="envy",
        command=PRINT_ENV,
        workspace=str(workspace),
        env=["ANTHROPIC_API_KEY", f"OPENAI_API_KEY={AGENT_OWN_KEY}"],
    )
    assert r.status_code == 201, r.text
    # The record shows names, never values.
    assert r.json()["agent"]["env"] == [
        {"name": "ANTHROPIC_API_KEY", "own_value": False},
        {"name": "OPENAI_API_KEY", "own_value": True},
    ]
    assert AGENT_OWN_KEY not in r.text
    seen = await env_seen(client, "envy")
    assert set(seen) == {
        "PATH",
        "HOME",
        "LANG",
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "HIVECALL_AGENT",
        "HIVECALL_TURN_ID",
        "HIVECALL_SESSION_ID",
    } | ({"LC_CTYPE"} & set(seen))  # Python may set LC_CTYPE for a C locale
    assert seen["ANTHROPIC_API_KEY"] == environ["ANTHROPIC_API_KEY"]
    # The agent's own key, not the hub's.
    assert seen["OPENAI_API_KEY"] == AGENT_OWN_KEY
    text = json.dumps(seen)
    for secret in ("owner-token-that-agents", LIVEKIT_API_SECRET, DB_URL_SECRET, FAKE_OPENAI_KEY):
        assert secret not in text


@pytest.mark.parametrize(
    "item",
    [
        "OPENAI_API_KEY",  # the hub's own secret, taken from the hub
        "LIVEKIT_API_SECRET",
        "HIVECALL_OWNER_TOKEN",
        "HIVECALL_OWNER_TOKEN=mine",  # the hub's own variable, even with a value
        "HIVECALL_TURN_ID=x",
        "LIVEKIT_URL",
        "1BAD",
        "A B",
    ],
)
async def test_a_record_cannot_name_the_hubs_secrets(
    client: httpx.AsyncClient, workspace: Path, item: str
) -> None:
    r = await add(client, name="greedy", command=PRINT_ENV, env=[item])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_request"
    assert (await client.get("/api/agents/greedy")).status_code == 404
    # Nor by an edit.
    assert (await add(client, name="plain", command=PRINT_ENV)).status_code == 201
    r = await client.patch("/api/agents/plain", json={"env": [item]})
    assert r.status_code == 400, r.text
    assert (await client.get("/api/agents/plain")).json()["agent"]["env"] == []


async def test_an_edit_replaces_the_variables(client: httpx.AsyncClient, workspace: Path) -> None:
    assert (await add(client, name="e", command=PRINT_ENV, env=["ANTHROPIC_API_KEY"])).is_success
    r = await client.patch("/api/agents/e", json={"env": ["UNRELATED_TOOL_TOKEN"]})
    assert r.status_code == 200, r.text
    seen = await env_seen(client, "e")
    assert "UNRELATED_TOOL_TOKEN" in seen and "ANTHROPIC_API_KEY" not in seen
    r = await client.patch("/api/agents/e", json={"env": []})
    assert "UNRELATED_TOOL_TOKEN" not in await env_seen(client, "e")


# -- keys sealed at rest ---------------------------------------------------------------------


async def test_agent_keys_and_own_values_are_sealed_in_the_store(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    r = await add(
        client,
        name="remote",
        runtime="openai_chat",
        base_url="http://127.0.0.1:9/v1",
        model="m",
        api_key=AGENT_OWN_KEY,
    )
    assert r.status_code == 201, r.text
    assert (
        await add(client, name="own", command=PRINT_ENV, env=[f"TOOL_KEY={AGENT_OWN_KEY}"])
    ).is_success
    store = Store(url=settings.resolved_database_url)
    try:
        async with store.session() as s:
            rows = {a.name: a for a in await s.scalars(select(Agent))}
    finally:
        await store.aclose()
    assert rows["remote"].api_key is not None and rows["remote"].api_key.startswith("v1:")
    assert AGENT_OWN_KEY not in repr(rows["remote"].api_key)
    assert AGENT_OWN_KEY not in json.dumps(rows["own"].env)
    hub: Hub = client._transport.app.state.hub  # type: ignore[attr-defined]
    assert (await hub.agents.get("remote")).api_key == AGENT_OWN_KEY
    assert (await hub.agents.get("own")).env == {"TOOL_KEY": AGENT_OWN_KEY}


async def test_keys_an_older_hub_stored_in_clear_are_sealed_on_open(
    settings: Settings, environ: dict[str, str], workspace: Path
) -> None:
    def app() -> Starlette:
        return create_app(settings, environ=environ, workspace=workspace)

    first = app()
    async with first.router.lifespan_context(first):
        hub: Hub = first.state.hub
        await hub.agents.create(
            AgentCreate(
                name="old", runtime="openai_chat", base_url="http://127.0.0.1:9/v1", model="m"
            )
        )
    # What an older hivecall left: the key in clear, and no record of sealing.
    store = Store(url=settings.resolved_database_url)
    async with store.session() as s, s.begin():
        await s.execute(update(Agent).values(api_key=AGENT_OWN_KEY))
        await s.delete(await s.get(Meta, "agent_keys_sealed"))
    await store.aclose()

    second = app()
    async with second.router.lifespan_context(second):
        hub = second.state.hub
        assert (await hub.agents.get("old")).api_key == AGENT_OWN_KEY
    store = Store(url=settings.resolved_database_url)
    async with store.session() as s:
        stored = await s.scalar(select(Agent.api_key))
    await store.aclose()
    assert stored is not None and stored.startswith("v1:") and AGENT_OWN_KEY not in stored


# -- the message is never an option ----------------------------------------------------------


def argv_for(preset: str, message: str, resumed: bool) -> list[str]:
    now = datetime.now(UTC)
    agent = AgentRecord(
        id="a1", name="a", runtime="command", preset=preset, command=PRESETS[preset].argv,
        workspace=None, machine="m", skills=(), base_url=None, model=None, description="",
        api_key=None, created_at=now, updated_at=now,
    )  # fmt: skip
    turn = TurnInput("t", agent, message, "s", resumed, 1.0)
    return build_argv(agent.command, preset, turn)[0]


@pytest.mark.parametrize("resumed", [False, True])
@pytest.mark.parametrize("preset", ["claude", "codex", "aider", "opencode", "goose", "gemini"])
def test_a_message_that_looks_like_an_option_stays_the_message(preset: str, resumed: bool) -> None:
    message = "--dangerously-skip-permissions"
    argv = argv_for(preset, message, resumed)
    # Either after the end of options, or glued to the option that carries it.
    if message in argv:
        at = argv.index(message)
        assert argv[at - 1] == "--" and argv.count("--") == 1 and at == len(argv) - 1, argv
    else:
        assert any(a.endswith(f"={message}") and a.startswith("--") for a in argv), argv


async def test_a_custom_template_never_passes_a_leading_dash(
    client: httpx.AsyncClient, workspace: Path, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    r = await add(
        client,
        name="custom",
        command=script("fake_agent.py") + " {message}",
        workspace=str(workspace),
        env=[f"FAKE_AGENT_LOG={log}"],
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/phone", json={"agent_id": "custom", "message": "--mode fail"})
    assert r.json()["ok"] is True, r.text  # not read as fake_agent's own --mode option
    [run] = [json.loads(line) for line in log.read_text().splitlines()]
    assert run["argv"] == [" --mode fail"]


# -- sessions belong to their caller ----------------------------------------------------------


async def test_two_callers_naming_the_same_session_get_two_cli_sessions(
    client: httpx.AsyncClient, workspace: Path, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text(f'#!/bin/sh\nexec {sys.executable} {SCRIPTS / "fake_agent.py"} "$@"\n')
    claude.chmod(0o755)
    r = await add(
        client,
        name="cc",
        runtime="claude",
        command=f"{claude} -p -- {{message}}",
        workspace=str(workspace),
        env=[f"FAKE_AGENT_LOG={log}"],
    )
    assert r.status_code == 201, r.text
    agent_id = r.json()["agent"]["id"]
    hub: Hub = client._transport.app.state.hub  # type: ignore[attr-defined]
    value, _ = await hub.tokens.create(
        kind="api", scopes=("turns:write",), name="another client", subject=None
    )
    other = {"authorization": f"Bearer {value}"}
    turns = [
        ({}, "first"),
        (other, "theirs"),
        ({}, "second"),
        (other, "theirs again"),
    ]
    for headers, message in turns:
        r = await client.post(
            "/api/phone",
            json={"agent_id": "cc", "message": message, "session_id": "default"},
            headers=headers,
        )
        assert r.json()["ok"] is True, r.text
    events = ["--output-format", "stream-json", "--verbose"]
    runs = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    owner_sid = session_uuid(agent_id, "default")  # the owner's sessions keep their UUIDs
    assert runs[0] == ["-p", "--session-id", owner_sid, *events, "--", "first"]
    # The other caller's "default" is a new session, not a resume of the owner's…
    assert runs[1][:2] == ["-p", "--session-id"] and runs[1][2] != owner_sid
    # …and each one resumes its own.
    assert runs[2] == ["-p", "--resume", owner_sid, *events, "--", "second"]
    assert runs[3] == ["-p", "--resume", runs[1][2], *events, "--", "theirs again"]


def test_callers() -> None:
    assert Principal("t1", "owner", ("*",)).caller == "owner"
    assert Principal("t2", "session", ("*",)).caller == "owner"
    assert Principal("t3", "device", ("calls",), subject="d1").caller == "device:d1"
    assert Principal("t4", "api", ("compat",)).caller == "api:t4"


# -- agents a killed hub left running -------------------------------------------------------


@pytest.fixture
async def orphan() -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    turn_id = new_id()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        env={**os.environ, "HIVECALL_TURN_ID": turn_id},
        start_new_session=True,
    )
    yield turn_id, proc
    proc.kill()
    proc.wait()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
async def test_recovery_kills_the_process_groups_of_unfinished_turns(
    settings: Settings,
    environ: dict[str, str],
    workspace: Path,
    orphan: tuple[str, subprocess.Popen[bytes]],
) -> None:
    turn_id, proc = orphan
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        env={**os.environ, "HIVECALL_TURN_ID": new_id()},  # another hub's turn
        start_new_session=True,
    )
    try:
        assert orphan_groups({turn_id}) == {proc.pid}
        # The store as a SIGKILLed hub left it: the turn still running.
        first = create_app(settings, environ=environ, workspace=workspace)
        async with first.router.lifespan_context(first):
            hub: Hub = first.state.hub
            agent = (await hub.agents.list())[0]
        store = Store(url=settings.resolved_database_url)
        async with store.session() as s, s.begin():
            s.add(
                Turn(
                    id=turn_id, agent_id=agent.id, session_id="s", source="phone",
                    status="running", message="work",
                )
            )  # fmt: skip
        await store.aclose()

        second = create_app(settings, environ=environ, workspace=workspace)
        async with second.router.lifespan_context(second):
            turn = await second.state.hub.bridge.get_turn(turn_id)
            assert turn.status == "interrupted" and turn.error_code == "hub_restarted"
            assert turn.spoken and "restarted" in turn.spoken  # something to say to the caller
        assert await asyncio.to_thread(proc.wait, 5) is not None
        assert bystander.poll() is None  # not ours: left alone
    finally:
        bystander.kill()
        bystander.wait()


# -- the migration ---------------------------------------------------------------------------


async def test_migration_moves_stored_preset_commands_behind_the_end_of_options(
    database_url: str,
) -> None:
    from alembic import command
    from alembic.config import Config

    from hivecall.store.db import MIGRATIONS

    store = Store(url=database_url)

    def upgrade_to(revision: str) -> Any:
        def run(conn: Any) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

        return run

    try:
        async with store.engine.begin() as conn:
            await conn.run_sync(upgrade_to("0005"))
            for name, preset, argv in (
                ("cc", "claude", ["claude", "-p", "{message}"]),
                ("ai", "aider", ["aider", "--yes-always", "--no-pretty", "--no-stream",
                                 "--message", "{message}"]),
                ("mine", "claude", ["claude", "-p", "--model", "x", "{message}"]),  # edited
            ):  # fmt: skip
                await conn.execute(
                    text(
                        "INSERT INTO agents (id, name, runtime, preset, command, machine, "
                        "skills, description, created_at, updated_at) VALUES (:id, :id, "
                        "'command', :preset, :argv, 'm', '[]', '', :at, :at)"
                    ),
                    {
                        "id": name,
                        "preset": preset,
                        "argv": json.dumps(argv),
                        "at": datetime.now(UTC),
                    },
                )
        await store.migrate()
        async with store.session() as s:
            commands = {a.name: a.command for a in await s.scalars(select(Agent))}
            envs = {a.name: a.env for a in await s.scalars(select(Agent))}
    finally:
        await store.aclose()
    assert commands["cc"] == ["claude", "-p", "--", "{message}"]
    assert commands["ai"][-1] == "--message={message}"
    assert commands["mine"] == ["claude", "-p", "--model", "x", "{message}"]  # the user's own
    assert envs == {"cc": {}, "ai": {}, "mine": {}}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
async def test_recovery_leaves_the_turns_of_another_live_process_alone(
    settings: Settings,
    environ: dict[str, str],
    workspace: Path,
    orphan: tuple[str, subprocess.Popen[bytes]],
) -> None:
    """A `hivecall ask` in a terminal runs its turn in its own process: a hub that starts
    meanwhile must neither kill its agent nor mark its turn interrupted."""
    turn_id, agent_proc = orphan
    cli = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        first = create_app(settings, environ=environ, workspace=workspace)
        async with first.router.lifespan_context(first):
            agent = (await first.state.hub.agents.list())[0]
        live_runner = f"{socket.gethostname()}:{cli.pid}:{process_start(cli.pid)}"
        gone_runner = f"{socket.gethostname()}:{cli.pid}:1"  # that pid, but another process
        other = new_id()
        store = Store(url=settings.resolved_database_url)
        async with store.session() as s, s.begin():
            for tid, runner in ((turn_id, live_runner), (other, gone_runner)):
                s.add(
                    Turn(
                        id=tid, agent_id=agent.id, session_id="s", source="cli", status="running",
                        message="work", runner=runner,
                    )
                )  # fmt: skip
        await store.aclose()
        assert runner_alive(live_runner) and not runner_alive(gone_runner)

        second = create_app(settings, environ=environ, workspace=workspace)
        async with second.router.lifespan_context(second):
            bridge = second.state.hub.bridge
            assert (await bridge.get_turn(turn_id)).status == "running"
            assert (await bridge.get_turn(other)).status == "interrupted"
        assert agent_proc.poll() is None  # the live process's agent still works
    finally:
        cli.kill()
        cli.wait()
