"""The command runtime end to end: real CLI-like scripts run per turn in the agent's workspace.

Every test goes through the HTTP API of the real app (SQLite and PostgreSQL) and checks what the
agent process actually received (tests/scripts/fake_agent.py logs its argv, stdin, cwd and
environment to FAKE_AGENT_LOG) as well as what callers and the turn log see.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import stat
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hivecall.runtimes.command import session_uuid
from hivecall.settings import Settings
from tests.conftest import SCRIPTS, script
from tests.procs import alive

MESSAGE = """fix it; rm -rf / && echo "$HOME" 'x'"""
SECRET = "sk-abcdefghijklmnopqrstuvwx"


def answer_for(message: str) -> str:
    """The markdown fake_agent.py answers with (what the turn log must keep verbatim)."""
    return (
        f"## Done\n\nI **handled**: {message}\n\n"
        "```python\nprint('hi')\nprint('there')\n```\n- all tests pass"
    )


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def agent_log(tmp_path: Path) -> Path:
    return tmp_path / "agent-runs.jsonl"


@pytest.fixture
def child_pidfile(tmp_path: Path) -> Path:
    return tmp_path / "child.pid"


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    return d


@pytest.fixture
def environ(
    environ: dict[str, str], agent_log: Path, child_pidfile: Path, bin_dir: Path
) -> dict[str, str]:
    """The conftest environment plus the fake agent's knobs and a bin dir first on PATH.

    Overrides conftest's `environ`, so `app` (which copies it into the command runtime when it
    starts) is built with these values.
    """
    return {
        **environ,
        "PATH": f"{bin_dir}{os.pathsep}{environ['PATH']}",
        "FAKE_AGENT_LOG": str(agent_log),
        "FAKE_AGENT_CHILD_PID": str(child_pidfile),
    }


def runs(log: Path) -> list[dict[str, Any]]:
    """One record per fake agent process that started, in start order."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


async def create_agent(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    # Agents get only the variables their record names (besides PATH, HOME, locale…).
    body.setdefault("env", ["FAKE_AGENT_LOG", "FAKE_AGENT_CHILD_PID"])
    r = await client.post("/api/agents", json=body)
    assert r.status_code == 201, r.text
    agent: dict[str, Any] = r.json()["agent"]
    return agent


async def phone(client: httpx.AsyncClient, agent_id: str, message: str, **extra: Any) -> Any:
    return await client.post("/api/phone", json={"agent_id": agent_id, "message": message, **extra})


async def all_turns(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/api/turns", params={"limit": 500})
    assert r.status_code == 200
    turns: list[dict[str, Any]] = r.json()["turns"]
    return turns


async def get_turn(client: httpx.AsyncClient, turn_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/turns/{turn_id}")
    assert r.status_code == 200, r.text
    turn: dict[str, Any] = r.json()["turn"]
    return turn


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]


async def wait_gone(*pids: int, within: float = 5.0) -> list[int]:
    """Poll until none of `pids` runs; returns the ones still running when time is up."""
    deadline = time.monotonic() + within
    while (left := [p for p in pids if alive(p)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


# -- how the message reaches the agent -------------------------------------------------------


async def test_message_placeholder_is_one_argv_element(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    agent = await create_agent(
        client,
        name="coder",
        command=script("fake_agent.py") + " {message}",
        workspace=str(workspace),
    )
    assert agent["runtime"] == "command" and agent["command"][-1] == "{message}"
    assert agent["status"] == "ready"

    r = await phone(client, agent["id"], MESSAGE)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["status"] == "done" and "error" not in body

    [run] = runs(agent_log)
    # Exactly the request, as one argument: no shell split it, expanded $HOME or ran `rm`.
    assert run["argv"] == [MESSAGE]
    assert run["message"] == MESSAGE
    assert run["cwd"] == str(workspace.resolve())
    assert run["turn_id"] == body["turn_id"]
    assert run["session"] == body["session_id"]
    assert run["agent"] == "coder"

    # What a voice says: markup gone, the code block summarised rather than read out.
    text = body["text"]
    for markup in ("**", "##", "```", "print(", "'hi'"):
        assert markup not in text
    assert "Done." in text and f"I handled: {MESSAGE}" in text
    assert "python code" in text and "2 lines" in text and "won't read" in text
    assert "all tests pass" in text

    # The turn log keeps the agent's raw markdown.
    turn = await get_turn(client, body["turn_id"])
    assert turn["status"] == "done" and turn["error_code"] is None
    assert turn["source"] == "phone" and turn["agent_id"] == agent["id"]
    assert turn["message"] == MESSAGE
    assert turn["reply"] == answer_for(MESSAGE)
    assert turn["spoken"] == text
    assert turn["started_at"] and turn["finished_at"]


async def test_without_placeholder_the_message_goes_to_stdin(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    agent = await create_agent(
        client, name="stdin-agent", command=script("fake_agent.py"), workspace=str(workspace)
    )
    message = 'two lines\nwith "quotes" and $VARS; `ticks`'
    r = await phone(client, agent["id"], message)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text

    [run] = runs(agent_log)
    assert run["argv"] == []
    assert run["message"] == message
    assert run["cwd"] == str(workspace.resolve())
    assert (await get_turn(client, r.json()["turn_id"]))["reply"] == answer_for(message)


async def test_template_is_split_like_a_shell(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    template = (
        script("fake_agent.py") + """ 'two words here' "say \\"hi\\" now" --prompt={message}"""
    )
    agent = await create_agent(client, name="split", command=template, workspace=str(workspace))
    assert agent["command"] == [
        sys.executable,
        str(SCRIPTS / "fake_agent.py"),
        "two words here",
        'say "hi" now',
        "--prompt={message}",
    ]

    r = await phone(client, agent["id"], "hello there")
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    [run] = runs(agent_log)
    assert run["argv"] == ["two words here", 'say "hi" now', "--prompt=hello there"]


# -- streaming -------------------------------------------------------------------------------


async def test_agent_runtime_streams_the_output(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    agent = await create_agent(
        client,
        name="streamer",
        command=script("fake_agent.py") + " --mode stream {message}",
        workspace=str(workspace),
    )
    request = {
        "agent_id": agent["id"],
        "messages": [{"role": "user", "content": "count to three"}],
        "stream": True,
    }
    async with client.stream("POST", "/api/chat/agent-runtime", json=request) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in r.aiter_lines() if line]

    assert all(line.startswith("data: ") for line in lines)
    events = [line.removeprefix("data: ") for line in lines]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "streamer" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["hivecall"]["status"] == "done"
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    # The words were written 50 ms apart and arrive as separate chunks, not one buffered blob.
    assert len(pieces) >= 2, pieces
    assert "".join(pieces).strip() == "one two three"

    [run] = runs(agent_log)
    assert run["argv"] == ["--mode", "stream", "count to three"]
    assert run["turn_id"] == final["hivecall"]["turn_id"]
    turn = await get_turn(client, final["hivecall"]["turn_id"])
    assert turn["status"] == "done" and turn["source"] == "chat"
    assert turn["reply"] == "one two three"


# -- failures --------------------------------------------------------------------------------


async def test_nonzero_exit_is_a_spoken_failure_without_stderr(
    client: httpx.AsyncClient,
    app: Starlette,
    workspace: Path,
    agent_log: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    agent = await create_agent(
        client,
        name="broken",
        command=script("fake_agent.py") + " --mode fail {message}",
        workspace=str(workspace),
    )
    r = await phone(client, agent["id"], "do the thing")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False and body["status"] == "failed"
    assert body["error"]["code"] == "runtime_failed"
    assert "broken" in body["text"] and "3" in body["text"]
    assert len(runs(agent_log)) == 1

    turn = await get_turn(client, body["turn_id"])
    assert turn["status"] == "failed" and turn["error_code"] == "runtime_failed"
    assert turn["spoken"] == body["text"]
    assert turn["finished_at"]

    # The stderr line (which holds a key) is in no response, no stored column and no log line.
    listing = await client.get("/api/turns")
    shown = await client.get(f"/api/turns/{body['turn_id']}")
    for response in (r, listing, shown):
        assert SECRET not in response.text and "Traceback" not in response.text
    row = await app.state.hub.bridge.get_turn(body["turn_id"])
    assert row is not None
    for column in row.__table__.columns:
        assert SECRET not in str(getattr(row, column.key))
    failed = [rec for rec in caplog.records if rec.getMessage() == "agent command failed"]
    assert failed and getattr(failed[0], "exit_code", None) == 3
    for rec in caplog.records:
        assert SECRET not in rec.getMessage()
        assert all(SECRET not in str(v) for v in rec.__dict__.values())


class TestTimeouts:
    """Turns on an agent that never answers, with a one-second turn timeout."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.replace(turn_timeout=1)

    async def test_timeout_kills_the_agent_and_its_children(
        self,
        client: httpx.AsyncClient,
        workspace: Path,
        agent_log: Path,
        child_pidfile: Path,
    ) -> None:
        agent = await create_agent(
            client,
            name="sleeper",
            command=script("fake_agent.py") + " --mode sleep {message}",
            workspace=str(workspace),
        )
        t0 = time.monotonic()
        r = await phone(client, agent["id"], "take your time")
        elapsed = time.monotonic() - t0
        assert r.status_code == 200
        body = r.json()
        assert body["ok"] is False and body["status"] == "failed"
        assert body["error"]["code"] == "runtime_timeout"
        assert "sleeper" in body["text"] and "1 seconds" in body["text"]
        assert 1 <= elapsed < 10

        turn = await get_turn(client, body["turn_id"])
        assert turn["status"] == "failed" and turn["error_code"] == "runtime_timeout"

        [run] = runs(agent_log)
        agent_pid, child_pid = run["pid"], int(child_pidfile.read_text())
        try:
            assert await wait_gone(agent_pid, child_pid) == []
        finally:
            for pid in (agent_pid, child_pid):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)

    @pytest.mark.parametrize(
        ("mode", "status", "code"),
        [("answer-bg", "done", None), ("fail-bg", "failed", "runtime_failed")],
    )
    async def test_a_child_left_holding_stderr_does_not_stall_the_turn(
        self,
        client: httpx.AsyncClient,
        workspace: Path,
        agent_log: Path,
        child_pidfile: Path,
        mode: str,
        status: str,
        code: str | None,
    ) -> None:
        """An agent that exits but leaves a process holding its stderr (a daemon it started) has
        answered: the turn ends with the agent's own outcome, not a timeout."""
        agent = await create_agent(
            client,
            name="leaky",
            command=script("fake_agent.py") + f" --mode {mode} {{message}}",
            workspace=str(workspace),
        )
        try:
            r = await asyncio.wait_for(phone(client, agent["id"], "go"), 10)
            assert r.status_code == 200
            body = r.json()
            assert body["status"] == status and body.get("error", {}).get("code") == code
            turn = await get_turn(client, body["turn_id"])
            assert turn["status"] == status and turn["error_code"] == code
            expected = answer_for("go") if status == "done" else "partial output"
            assert turn["reply"] == expected
            assert len(runs(agent_log)) == 1
        finally:
            if child_pidfile.exists():
                pid = int(child_pidfile.read_text())
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
                assert await wait_gone(pid) == []


# -- sessions --------------------------------------------------------------------------------


async def test_claude_preset_names_and_resumes_its_session(
    client: httpx.AsyncClient,
    workspace: Path,
    agent_log: Path,
    bin_dir: Path,
) -> None:
    claude = bin_dir / "claude"
    claude.write_text(f'#!/bin/sh\nexec {sys.executable} {SCRIPTS / "fake_agent.py"} "$@"\n')
    claude.chmod(claude.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    # `claude` is only on the PATH agents get (`environ`), not on this process's PATH.
    assert shutil.which("claude", path=os.environ.get("PATH")) != str(claude)

    agent = await create_agent(
        client, name="claude-code", runtime="claude", workspace=str(workspace)
    )
    assert agent["runtime"] == "command" and agent["preset"] == "claude"
    assert agent["command"] == ["claude", "-p", "--", "{message}"]

    for message, session in (("first", "call-1"), ("second", "call-1"), ("other", "call-2")):
        r = await phone(client, agent["id"], message, session_id=session)
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        assert r.json()["session_id"] == session

    first, second, other = runs(agent_log)
    sid = session_uuid(agent["id"], "call-1")
    assert str(uuid.UUID(sid)) == sid
    # Claude Code is asked for its stream-json events (this stand-in answers in plain text,
    # which is read as the answer).
    events = ["--output-format", "stream-json", "--verbose"]
    assert first["argv"] == ["-p", "--session-id", sid, *events, "--", "first"]
    assert second["argv"] == ["-p", "--resume", sid, *events, "--", "second"]
    assert other["argv"][:2] == ["-p", "--session-id"]
    assert other["argv"][3:] == [*events, "--", "other"]
    other_sid = other["argv"][2]
    assert str(uuid.UUID(other_sid)) == other_sid and other_sid != sid
    assert [x["session"] for x in (first, second, other)] == ["call-1", "call-1", "call-2"]
    assert all(x["cwd"] == str(workspace.resolve()) for x in (first, second, other))


# -- one turn at a time ----------------------------------------------------------------------


async def test_turns_on_one_command_agent_run_one_after_the_other(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    agent = await create_agent(
        client,
        name="careful",
        command=script("fake_agent.py") + " --mode slow {message}",
        workspace=str(workspace),
    )
    # The slow mode exits 4 if another run is busy in the workspace, so overlap would fail a turn.
    r1, r2 = await asyncio.gather(
        phone(client, agent["id"], "first job"), phone(client, agent["id"], "second job")
    )
    for r in (r1, r2):
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
    assert not (workspace / "fake_agent.busy").exists()

    turns = [await get_turn(client, r.json()["turn_id"]) for r in (r1, r2)]

    def at(turn: dict[str, Any], key: str) -> datetime:
        return datetime.fromisoformat(turn[key])

    a, b = sorted(turns, key=lambda t: at(t, "started_at"))
    # Both were queued before the first finished (they really were concurrent) ...
    assert max(at(a, "queued_at"), at(b, "queued_at")) < at(a, "finished_at")
    # ... yet the second only started once the first was done.
    assert at(b, "started_at") >= at(a, "finished_at")

    first, second = sorted(runs(agent_log), key=lambda x: x["started"])
    assert second["started"] - first["started"] >= 0.5
    assert {first["turn_id"], second["turn_id"]} == {a["id"], b["id"]}


# -- refused input ---------------------------------------------------------------------------


async def test_bad_agent_definitions_are_refused(
    client: httpx.AsyncClient, workspace: Path, tmp_path: Path
) -> None:
    before = (await client.get("/api/agents")).json()["agents"]
    a_file = tmp_path / "not-a-folder.txt"
    a_file.write_text("x")
    cases = [
        ("no-exe", "/nonexistent/bin/agent {message}", str(workspace), "command_not_found"),
        ("no-cli", "no-such-agent-cli-3f9 {message}", str(workspace), "command_not_found"),
        ("file-ws", script("fake_agent.py") + " {message}", str(a_file), "workspace_not_found"),
        (
            "missing-ws",
            script("fake_agent.py") + " {message}",
            str(tmp_path / "nope"),
            "workspace_not_found",
        ),
    ]
    for name, command, ws, code in cases:
        r = await client.post(
            "/api/agents", json={"name": name, "command": command, "workspace": ws}
        )
        assert_error(r, 400, code)
        assert_error(await client.get(f"/api/agents/{name}"), 404, "agent_not_found")
    assert (await client.get("/api/agents")).json()["agents"] == before
    assert await all_turns(client) == []


async def test_refused_turns_write_nothing(
    client: httpx.AsyncClient,
    settings: Settings,
    workspace: Path,
    tmp_path: Path,
    agent_log: Path,
) -> None:
    agent = await create_agent(
        client,
        name="fine",
        command=script("fake_agent.py") + " {message}",
        workspace=str(workspace),
    )
    doomed = tmp_path / "doomed"
    doomed.mkdir()
    orphan = await create_agent(
        client, name="orphan", command=script("fake_agent.py") + " {message}", workspace=str(doomed)
    )
    doomed.rmdir()
    assert (await client.get("/api/agents/orphan")).json()["agent"]["status"] == "unavailable"

    too_long = "x" * (settings.max_message_chars + 1)
    refused = [
        (await phone(client, orphan["id"], "hello"), 409, "agent_unavailable"),
        (await phone(client, "orphan", "hello"), 409, "agent_unavailable"),
        (
            await client.post(
                "/api/chat/agent-runtime",
                json={"agent_id": orphan["id"], "messages": [{"role": "user", "content": "hi"}]},
            ),
            409,
            "agent_unavailable",
        ),
        (await phone(client, agent["id"], ""), 400, "empty_message"),
        (await phone(client, agent["id"], "  \n\t "), 400, "empty_message"),
        (await phone(client, agent["id"], too_long), 400, "message_too_long"),
        (await phone(client, "nobody", "hello"), 404, "agent_not_found"),
    ]
    for r, status, code in refused:
        assert_error(r, status, code)
    assert await all_turns(client) == []
    assert runs(agent_log) == []

    # The healthy agent itself was fine all along: a good message makes exactly one turn.
    r = await phone(client, agent["id"], "x" * settings.max_message_chars)
    assert r.status_code == 200 and r.json()["ok"] is True
    assert [t["id"] for t in await all_turns(client)] == [r.json()["turn_id"]]
    assert len(runs(agent_log)) == 1
