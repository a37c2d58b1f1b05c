"""Long agent work: progress while it runs, its events for every face, cancel, and a voice tool
call that answers "started" instead of blocking the call.

Real CLI-like scripts (tests/scripts/fake_agent.py in its `work` and `sleep` modes, and
tests/scripts/fake_claude.py speaking Claude Code's stream-json) run through the real app on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from hivecall.hub import Hub
from hivecall.runtimes.base import Progress
from hivecall.runtimes.progress import READERS
from hivecall.settings import Settings
from hivecall.turns.handle import PROGRESS_KEEP, REPLY_MAX
from tests.conftest import OWNER, SCRIPTS, script
from tests.procs import alive


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=database_url, owner_token=OWNER, voice_ack_s=0.5
    )


@pytest.fixture
def agent_log(tmp_path: Path) -> Path:
    return tmp_path / "runs.jsonl"


def hub_of(app: Starlette) -> Hub:
    hub: Hub = app.state.hub
    return hub


async def add_agent(
    client: httpx.AsyncClient,
    name: str,
    command: str,
    workspace: Path,
    agent_log: Path,
    **more: Any,
) -> dict[str, Any]:
    r = await client.post(
        "/api/agents",
        json={
            "name": name,
            "command": command,
            "workspace": str(workspace),
            "env": [f"FAKE_AGENT_LOG={agent_log}", f"FAKE_AGENT_CHILD_PID={agent_log}.child"],
            **more,
        },
    )
    assert r.status_code == 201, r.text
    agent: dict[str, Any] = r.json()["agent"]
    return agent


async def framed(
    client: httpx.AsyncClient, turn_id: str, *, after: str | None = None
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every event of a turn's stream until `done`, as (id, kind, data); `after` is sent as
    Last-Event-ID."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    headers = {"last-event-id": after} if after is not None else {}
    async with client.stream("GET", f"/api/turns/{turn_id}/events", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event_id, kind = "", ""
        async for line in r.aiter_lines():
            if line.startswith("id: "):
                event_id = line.removeprefix("id: ")
            elif line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                out.append((event_id, kind, json.loads(line.removeprefix("data: "))))
    return out


async def events(
    client: httpx.AsyncClient, turn_id: str, *, after: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Every event of a turn's stream, until `done`."""
    return [(kind, data) for _, kind, data in await framed(client, turn_id, after=after)]


def story(got: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], str, dict[str, Any]]:
    """What a subscriber learns: the progress lines, the answer, the end."""
    progress = [d["text"] for k, d in got if k == "progress"]
    return progress, "".join(d["text"] for k, d in got if k == "delta").strip(), got[-1][1]


async def start(client: httpx.AsyncClient, agent: str, message: str, **extra: Any) -> Any:
    r = await client.post("/api/phone", json={"agent_id": agent, "message": message, **extra})
    assert r.status_code == 200, r.text
    return r.json()


# -- a long turn on the phone route ----------------------------------------------------------


async def test_a_long_turn_answers_started_then_its_events_carry_the_work(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    await add_agent(
        client, "worker", script("fake_agent.py") + " --mode work:4:0.3 {message}", workspace,
        agent_log,
    )  # fmt: skip
    body = await start(client, "worker", "check everything")
    # Longer than voice_ack_s (0.5 s): the tool call answers at once that the agent is on it.
    assert body["ok"] is True and body["status"] == "running", body
    assert "worker" in body["text"] and "working" in body["text"]
    seen = await framed(client, body["turn_id"])
    got = [(kind, data) for _, kind, data in seen]
    kinds = [k for k, _ in got]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    lines = [d["text"] for k, d in got if k == "progress"]
    # A plain CLI's lines are its progress as it prints them (its last one is its answer's).
    assert lines[:4] == [f"step {i} of 4: checking part {i}" for i in range(1, 5)], lines
    done = got[-1][1]
    assert done["status"] == "done" and done["turn_id"] == body["turn_id"]
    assert "All 4 parts are fine" in done["text"]
    answer = "".join(d["text"] for k, d in got if k == "delta")
    assert "All 4 parts are fine: check everything" in answer

    # A subscriber that comes after the end gets the same story from the store, which keeps
    # the answer as one delta after all the progress…
    replay = await events(client, body["turn_id"])
    assert story(replay) == story(got) and [k for k, _ in replay] != kinds
    # …and a follower whose stream dropped after any event, reopening it with that event's id,
    # gets the rest of the story from the store and nothing twice.
    for i, (event_id, _, _) in enumerate(seen[:-1]):
        rest = await events(client, body["turn_id"], after=event_id)
        assert story(got[: i + 1] + rest) == story(got), (i, event_id, rest)
    turn = (await client.get(f"/api/turns/{body['turn_id']}")).json()["turn"]
    assert [p["text"] for p in turn["progress"]] == lines


async def test_a_quick_turn_still_answers_in_full(client: httpx.AsyncClient) -> None:
    body = await start(client, "echo", "hello")
    assert body["status"] == "done" and "hello" in body["text"]


async def test_a_late_subscriber_to_a_running_turn_misses_nothing(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    await add_agent(
        client, "worker", script("fake_agent.py") + " --mode work:5:0.3 {message}", workspace,
        agent_log,
    )  # fmt: skip
    body = await start(client, "worker", "go")
    await asyncio.sleep(0.7)  # a few lines have been printed already
    early, late = await asyncio.gather(
        events(client, body["turn_id"]),
        events(client, body["turn_id"]),
    )
    assert early == late
    assert len([k for k, _ in early if k == "progress"]) >= 5


async def test_a_last_event_id_the_hub_did_not_send_is_refused(
    client: httpx.AsyncClient,
) -> None:
    body = await start(client, "echo", "hello")
    r = await client.get(
        f"/api/turns/{body['turn_id']}/events", headers={"last-event-id": "three please"}
    )
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "code": "invalid_last_event_id",
            "message": "Last-Event-ID is not an event id this hub sent",
        }
    }


# -- Claude Code's stream-json ---------------------------------------------------------------


async def test_claude_code_events_become_progress_and_its_result_the_answer(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path, tmp_path: Path
) -> None:
    claude = tmp_path / "claude"
    claude.write_text(f'#!/bin/sh\nexec {sys.executable} {SCRIPTS / "fake_claude.py"} "$@"\n')
    claude.chmod(0o755)
    await add_agent(
        client, "cc", f"{claude} -p -- {{message}}", workspace, agent_log, runtime="claude"
    )
    body = await start(client, "cc", "fix the tests slowly")
    assert body["status"] == "running"
    got = await events(client, body["turn_id"])
    assert [d["text"] for k, d in got if k == "progress"] == [
        "I'll run the tests.",
        "running pytest -q",
        "editing src/app.py",
    ]
    assert got[-1][1]["status"] == "done"
    assert got[-1][1]["text"] == "Fixed it: fix the tests slowly"
    [run] = [json.loads(line) for line in agent_log.read_text().splitlines()]
    assert run["argv"][-5:] == ["--output-format", "stream-json", "--verbose", "--", run["message"]]


def test_codex_json_events() -> None:
    reader = READERS["codex-json"]()
    lines = [
        {"type": "thread.started", "thread_id": "t"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "Looking at it."}},
        {"type": "item.started", "item": {"type": "command_execution", "command": "make test"}},
        {"type": "item.completed", "item": {"type": "file_change", "changes": [{"path": "a.py"}]}},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "All green now."}},
        {"type": "turn.completed", "usage": {}},
    ]
    out = reader.stdout("".join(json.dumps(x) + "\n" for x in lines)) + reader.end()
    assert out == [
        Progress("running make test"),
        Progress("editing a.py"),
        Progress("Looking at it."),
        "All green now.",
    ]


def test_a_cli_too_old_for_events_is_read_as_text() -> None:
    reader = READERS["claude-stream-json"]()
    out = reader.stdout("The answer\nis 42\n") + reader.end()
    assert out[-1] == "The answer\nis 42\n"


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_kills_the_process_group_and_records_cancelled(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    await add_agent(
        client, "sleepy", script("fake_agent.py") + " --mode sleep {message}", workspace,
        agent_log,
    )  # fmt: skip
    body = await start(client, "sleepy", "take forever")
    assert body["status"] == "running"
    child = int(Path(f"{agent_log}.child").read_text())
    [run] = [json.loads(line) for line in agent_log.read_text().splitlines()]
    assert alive(child) and alive(run["pid"])

    follow = asyncio.create_task(events(client, body["turn_id"]))
    r = await client.post(f"/api/turns/{body['turn_id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelling", r.text
    got = await asyncio.wait_for(follow, 10)
    assert got[-1] == ("done", got[-1][1]) and got[-1][1]["status"] == "cancelled"
    assert "Stopped sleepy" in got[-1][1]["text"]
    for _ in range(50):
        if not alive(child) and not alive(run["pid"]):
            break
        await asyncio.sleep(0.05)
    assert not alive(child) and not alive(run["pid"])  # the whole group
    turn = (await client.get(f"/api/turns/{body['turn_id']}")).json()["turn"]
    assert turn["status"] == "cancelled" and turn["error_code"] == "cancelled"

    r = await client.post(f"/api/turns/{body['turn_id']}/cancel")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "turn_finished")
    r = await client.post("/api/turns/nope/cancel")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "turn_not_found")
    assert (await client.get("/api/turns/nope/events")).status_code == 404


async def test_cancel_of_a_turn_waiting_its_turn(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    await add_agent(
        client, "one", script("fake_agent.py") + " --mode work:3:0.3 {message}", workspace,
        agent_log,
    )  # fmt: skip
    first, second = await asyncio.gather(start(client, "one", "a"), start(client, "one", "b"))
    r = await client.post(f"/api/turns/{second['turn_id']}/cancel")
    assert r.status_code == 200, r.text
    done = (await events(client, second["turn_id"]))[-1][1]
    assert done["status"] == "cancelled"
    assert (await events(client, first["turn_id"]))[-1][1]["status"] == "done"
    # The cancelled one never ran.
    assert [json.loads(line)["message"] for line in agent_log.read_text().splitlines()] == ["a"]


# -- one tool call, one turn ----------------------------------------------------------------


async def test_the_same_tool_call_twice_is_one_turn(
    app: Starlette, client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    agent = await add_agent(
        client, "worker", script("fake_agent.py") + " --mode work:2:0.3 {message}", workspace,
        agent_log,
    )  # fmt: skip
    hub = hub_of(app)
    owner = await hub.tokens.verify(OWNER)
    assert owner is not None
    call = await hub.calls.create(agent_id=agent["id"], mode="local", who=owner)
    tool = {"call_id": call.id, "tool_call_id": "call_abc"}
    a, b = await asyncio.gather(
        start(client, "worker", "do it", **tool), start(client, "worker", "do it", **tool)
    )
    assert a["turn_id"] == b["turn_id"]
    await events(client, a["turn_id"])
    again = await start(client, "worker", "do it", **tool)  # after it ended: its answer
    assert again["turn_id"] == a["turn_id"] and again["status"] == "done"
    other = await start(client, "worker", "do it", call_id=call.id, tool_call_id="call_def")
    assert other["turn_id"] != a["turn_id"]
    await events(client, other["turn_id"])
    runs = [json.loads(line)["turn_id"] for line in agent_log.read_text().splitlines()]
    assert sorted(runs) == sorted([a["turn_id"], other["turn_id"]])
    lines = (await client.get(f"/api/calls/{call.id}")).json()["lines"]
    assert [line["kind"] for line in lines].count("tool") == 2


# -- who may follow a turn ------------------------------------------------------------------


async def test_a_phone_follows_only_its_own_calls_turns(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    hub = hub_of(app)
    echo = await hub.agents.get("echo")
    value, _ = await hub.tokens.create(
        kind="device", scopes=("calls", "agents:read"), name="phone", subject="d1"
    )
    phone = await hub.tokens.verify(value)
    assert phone is not None
    mine = await hub.calls.create(agent_id=echo.id, mode="local", who=phone)
    headers = {"authorization": f"Bearer {value}"}
    r = await client.post(
        "/api/phone", json={"agent_id": "echo", "message": "hi", "call_id": mine.id},
        headers=headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    own = r.json()["turn_id"]
    owners = (await start(client, "echo", "private"))["turn_id"]
    async with client.stream("GET", f"/api/turns/{own}/events", headers=headers) as s:
        assert s.status_code == 200
    assert (await client.get(f"/api/turns/{own}", headers=headers)).status_code == 200
    for path in (
        f"/api/turns/{owners}",
        f"/api/turns/{owners}/events",
        f"/api/turns/{owners}/cancel",
    ):
        method = "POST" if path.endswith("cancel") else "GET"
        r = await client.request(method, path, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "turn_not_found")


# -- floods --------------------------------------------------------------------------------


async def test_a_flooding_agent_is_bounded(
    client: httpx.AsyncClient, workspace: Path, agent_log: Path
) -> None:
    flood = (
        f"{sys.executable} -c 'import sys\n"
        'for i in range(60000): print(f"line {i} " + "x" * 20)\n'
        "sys.stdout.flush()'"
    )
    await add_agent(client, "flood", flood, workspace, agent_log)
    body = await start(client, "flood", "go")
    got = await events(client, body["turn_id"])
    assert got[-1][1]["status"] == "done"
    turn = (await client.get(f"/api/turns/{body['turn_id']}")).json()["turn"]
    assert len(turn["progress"]) <= PROGRESS_KEEP
    assert len(turn["reply"]) <= REPLY_MAX
    assert sum(len(d["text"]) for k, d in got if k == "delta") <= REPLY_MAX
