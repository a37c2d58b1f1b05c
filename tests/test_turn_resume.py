"""Resuming a turn's events from a follower's cursor (turns/resume.py): after any event of the
live stream, the rest comes whole and once, whether it is read from the running turn's handle
or from the store's replay of the ended turn (all progress, then the stripped answer)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hivecall.agents.records import AgentRecord
from hivecall.errors import BadRequest
from hivecall.store.models import Turn
from hivecall.turns.handle import TurnEvent, TurnHandle, TurnResult
from hivecall.turns.resume import Cursor, resumed

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
# What a CLI agent makes: lines that are progress and answer at once, an answer that starts
# with blank lines and ends with a newline (the store keeps it stripped).
SCRIPT: list[tuple[str, str]] = [
    ("delta", "\n  "),
    ("progress", "reading the code"),
    ("delta", "step 1 done\n"),
    ("progress", "running the tests"),
    ("delta", "step 2 done\n"),
    ("delta", "all green\n"),
    ("progress", "writing the summary"),
    ("delta", "Fixed: the flaky test.\n\n"),
]


def agent() -> AgentRecord:
    return AgentRecord(
        id="a1", name="coder", runtime="command", preset=None, command=("coder",),
        workspace=None, machine="m", skills=(), base_url=None, model=None, description="",
        api_key=None, created_at=START, updated_at=START,
    )  # fmt: skip


async def live_handle() -> TurnHandle:
    handle = TurnHandle(turn_id="t1", session_id="s1", agent=agent())
    for i, (kind, text) in enumerate(SCRIPT):
        if kind == "progress":
            at = (START + timedelta(seconds=i)).isoformat(timespec="milliseconds")
            entry = {"at": at, "text": text}
            handle.progress.append(entry)
            handle._emit("progress", entry)
        else:
            handle.add_delta(text)
    reply = "".join(t for k, t in SCRIPT if k == "delta").strip()
    handle.finish(TurnResult("t1", "s1", handle.agent, "done", reply, reply, None, None, 12.0))
    return handle


def stored(handle: TurnHandle) -> TurnHandle:
    reply = "".join(t for k, t in SCRIPT if k == "delta").strip()
    row = Turn(
        id="t1",
        session_id="s1",
        agent_id="a1",
        status="done",
        reply=reply,
        spoken=reply,
        progress=list(handle.progress),
        duration_ms=12.0,
    )
    return TurnHandle.of_stored(row, handle.agent)


async def read(handle: TurnHandle, cursor: Cursor) -> list[tuple[Cursor, TurnEvent]]:
    return [pair async for pair in resumed(handle.events(), cursor)]


def story(events: list[TurnEvent]) -> tuple[list[Any], str, dict[str, Any]]:
    progress = [e.data["text"] for e in events if e.kind == "progress"]
    answer = "".join(e.data["text"] for e in events if e.kind == "delta").strip()
    assert [e.kind for e in events].count("done") == 1 and events[-1].kind == "done"
    return progress, answer, events[-1].data


async def test_from_the_start_the_stream_is_unchanged() -> None:
    handle = await live_handle()
    assert [e for _, e in await read(handle, Cursor())] == [e async for e in handle.events()]


@pytest.mark.parametrize("source", ["live", "stored"])
async def test_after_any_event_the_rest_comes_whole_and_once(source: str) -> None:
    handle = await live_handle()
    first = await read(handle, Cursor())
    whole = story([e for _, e in first])
    again = handle if source == "live" else stored(handle)
    for i, (cursor, _) in enumerate(first[:-1]):
        rest = await read(again, Cursor.parse(str(cursor)))
        got = [e for _, e in first[: i + 1]] + [e for _, e in rest]
        assert story(got) == whole, (i, cursor)
        progress = [e.data["text"] for e in got if e.kind == "progress"]
        assert len(progress) == len(set(progress)), (i, progress)


async def test_a_turn_still_running_is_resumed_live() -> None:
    handle = TurnHandle(turn_id="t2", session_id="s2", agent=agent())
    handle.add_progress("reading the code")
    handle.add_delta("  Half ")
    stream = resumed(handle.events(), Cursor())
    await anext(stream)
    cursor, _ = await anext(stream)  # the connection drops here
    await stream.aclose()

    async def more() -> None:
        await asyncio.sleep(0.01)
        handle.add_delta("and the rest.")
        handle.finish(TurnResult("t2", "s2", handle.agent, "done", "x", "x", None, None, 1.0))

    task = asyncio.create_task(more())
    rest = [e async for _, e in resumed(handle.events(), cursor)]
    await task
    assert [(e.kind, e.data.get("text")) for e in rest] == [
        ("delta", "and the rest."),
        ("done", "x"),
    ]
    assert str(cursor) == "5/" + handle.progress[0]["at"]


@pytest.mark.parametrize("raw", ["three please", "-1/", "5/now; drop table", "1" * 10 + "/"])
def test_an_id_the_hub_did_not_send_is_refused(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        Cursor.parse(raw)
    assert caught.value.code == "invalid_last_event_id"


def test_no_id_is_the_start() -> None:
    assert Cursor.parse(None) == Cursor.parse("") == Cursor()
