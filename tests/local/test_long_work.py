"""Long agent work on a local call, the conversation's side: an acknowledgement, progress in the
quiet moments, "stop" and "how is it going?", and the answer when it is ready.

Real VAD, Whisper and Piper, a real hub (SQLite and PostgreSQL) running tests/scripts/fake_agent.py
as a command agent; the hub's voice is drained in real time, as aiortc's sender drains it, and
what it said is transcribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette

from hivecall.calls.local import ACK_AFTER_S, Tuning
from hivecall.calls.records import CallLineIn
from hivecall.hub import Hub
from hivecall.settings import Settings
from hivecall.speech.models import shared
from hivecall.speech.tts import RATE as TTS_RATE
from hivecall.speech.tts import resample
from hivecall.turns.handle import TurnHandle
from hivecall.turns.request import TurnRequest
from hivecall.voice.local.conversation import LocalConversation
from hivecall.voice.local.track import SpeechTrack
from tests.conftest import OWNER, script
from tests.local.speech import overlap, phrases, said, silence, words
from tests.procs import alive

REQUEST = "Please check every part of the build."
STOP = "Stop."
STATUS = "How is it going?"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # The floor for progress lines (5 s); the acknowledgement as soon as a turn is not instant.
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        voice_ack_s=0.2,
        voice_progress_s=5,
    )


class Call:
    """A LocalConversation as LocalCalls makes one, with its voice drained in real time."""

    def __init__(self, hub: Hub, agent: str) -> None:
        self.hub = hub
        self.agent = agent
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.lines: list[CallLineIn] = []
        self.turns: list[str] = []
        self.speaker = SpeechTrack()
        self.heard = bytearray()  # the hub's voice as sent, 48 kHz, silence included
        self.first_audio: list[float] = []
        self.speaker.on_first_audio = self.first_audio.append
        self.conversation = LocalConversation(
            models=shared(),
            speaker=self.speaker,
            start_turn=self.start_turn,
            cancel_turn=hub.bridge.cancel,
            record=self.record,
            emit=lambda e: self.events.append((time.monotonic(), e)),
            agent_name="coder",
            tuning=Tuning.of(hub.settings),
        )
        self._drain = asyncio.create_task(self._drain_speaker())

    async def _drain_speaker(self) -> None:
        start = time.monotonic()
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
            self.heard += self.speaker.next_frame()

    async def start_turn(self, text: str) -> TurnHandle:
        self.turns.append(text)
        return await self.hub.bridge.start(
            TurnRequest(agent=self.agent, message=text, source="local_call", session_id="s1")
        )

    async def record(self, lines: list[CallLineIn]) -> None:
        self.lines.extend(lines)

    def say(self, text: str) -> None:
        self.conversation.feed(said(text) + silence(1.0))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e["type"] == kind]

    def spoken(self) -> list[str]:
        """What the hub said, one entry a line (from its transcript deltas)."""
        texts: dict[str, str] = {}
        for e in self.of("response.output_audio_transcript.delta"):
            texts[e["response_id"]] = texts.get(e["response_id"], "") + e["delta"]
        return list(texts.values())

    def heard_phrases(self) -> list[str]:
        pcm = np.frombuffer(bytes(self.heard), dtype=np.int16)
        return phrases(resample(pcm, TTS_RATE, 16000))

    async def until(self, check: Any, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.02)

    async def played_out(self) -> None:
        await self.until(lambda: self.conversation._quiet())
        await asyncio.sleep(0.1)

    async def aclose(self) -> None:
        await self.conversation.aclose()
        self._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain


def hub_of(app: Starlette) -> Hub:
    hub: Hub = app.state.hub
    return hub


async def add_agent(
    client: httpx.AsyncClient, mode: str, workspace: Path, log: Path
) -> dict[str, Any]:
    r = await client.post(
        "/api/agents",
        json={
            "name": "coder",
            "command": f"{script('fake_agent.py')} --mode {mode} {{message}}",
            "workspace": str(workspace),
            "env": [f"FAKE_AGENT_LOG={log}", f"FAKE_AGENT_CHILD_PID={log}.child"],
        },
    )
    assert r.status_code == 201, r.text
    agent: dict[str, Any] = r.json()["agent"]
    return agent


@pytest.fixture
async def call_on(
    app: Starlette, client: httpx.AsyncClient, workspace: Path, tmp_path: Path
) -> AsyncIterator[Any]:
    calls: list[Call] = []

    async def make(mode: str) -> Call:
        agent = await add_agent(client, mode, workspace, tmp_path / "runs.jsonl")
        call = Call(hub_of(app), agent["id"])
        calls.append(call)
        return call

    try:
        yield make
    finally:
        for call in calls:
            await call.aclose()


def said_in_order(heard: list[str], *needles: str) -> bool:
    """True when each of `needles` was heard, in that order (Whisper's case, punctuation and
    digits-as-words aside)."""
    text = " ".join(words(" ".join(heard)))
    at = [text.find(" ".join(words(n))) for n in needles]
    return -1 not in at and at == sorted(at)


async def test_a_long_turn_is_acknowledged_narrated_then_answered(call_on: Any) -> None:
    call: Call = await call_on("work:3:2.5")
    call.say(REQUEST)
    await call.until(lambda: call.of("hivecall.turn.done"), timeout=40)
    await call.played_out()

    [started] = call.of("hivecall.turn.started")
    [done] = call.of("hivecall.turn.done")
    assert done["status"] == "done" and done["turn_id"] == started["turn_id"]
    # The page sees each progress line as the agent prints it.
    progress = call.of("hivecall.turn.progress")
    assert [p["text"] for p in progress][:3] == [
        f"step {i} of 3: checking part {i}" for i in range(1, 4)
    ]
    assert all(p["turn_id"] == started["turn_id"] for p in progress)

    # Said: the acknowledgement, one progress line (the gap is 5 s, the turn 7.5 s), the answer.
    spoken = call.spoken()
    assert len(spoken) == 3, spoken
    assert spoken[0] == "coder is working on it."
    assert spoken[1].startswith("coder is still working: step "), spoken
    assert "of 3: checking part" in spoken[1]
    # (A plain CLI's answer is all it printed: its step lines too, then its last line.)
    assert "All 3 parts are fine" in spoken[2]
    # And heard in that order (transcribed from the audio sent).
    heard = call.heard_phrases()
    assert said_in_order(
        heard, "coder is working on it", "coder is still working", "parts are fine"
    ), heard

    # Timing: the acknowledgement came once the turn was not done after ack_s, the progress
    # line at least progress_s later.
    at = {e.get("response_id"): t for t, e in call.events if e["type"].endswith("delta")}
    t_started = next(t for t, e in call.events if e["type"] == "hivecall.turn.started")
    t_ack, t_step = sorted(at.values())[:2]
    assert 0.2 <= t_ack - t_started < 1.0
    assert t_step - t_ack >= 5.0
    # The call's record: the request, then each line with its turn.
    assert [ln.kind for ln in call.lines] == ["user", "agent", "agent", "agent"]
    assert {ln.turn_id for ln in call.lines} == {started["turn_id"]}


async def test_an_instant_answer_has_no_acknowledgement(call_on: Any) -> None:
    call: Call = await call_on("answer")
    call.say(REQUEST)
    await call.until(lambda: call.of("hivecall.turn.done"))
    await call.played_out()
    [answer] = call.spoken()
    assert "handled" in answer


async def test_stop_cancels_the_running_turn_and_says_so(call_on: Any, tmp_path: Path) -> None:
    call: Call = await call_on("sleep")
    call.say(REQUEST)
    await call.until(lambda: len(call.spoken()) == 1)  # the acknowledgement
    await call.played_out()
    [started] = call.of("hivecall.turn.started")
    run = json.loads((tmp_path / "runs.jsonl").read_text())
    child = int((tmp_path / "runs.jsonl.child").read_text())
    assert alive(run["pid"]) and alive(child)

    call.say(STOP)
    await call.until(lambda: call.of("hivecall.turn.done"))
    [done] = call.of("hivecall.turn.done")
    assert done == {
        "type": "hivecall.turn.done",
        "turn_id": started["turn_id"],
        "status": "cancelled",
    }
    await call.played_out()
    assert call.spoken()[-1] == "Stopped coder."
    # ("Stopped coder." is heard as "Stop coder." by tiny.en.)
    heard = call.heard_phrases()
    assert said_in_order(heard, "coder is working on it", "stop"), heard
    assert call.turns == [call.turns[0]]  # "stop" went to no agent
    await call.until(lambda: not alive(run["pid"]) and not alive(child), timeout=5)
    turn = await call.hub.bridge.get_turn(started["turn_id"])
    assert turn is not None and turn.status == "cancelled"
    assert call.conversation.stats.commands == 1


async def test_stop_with_nothing_running(call_on: Any) -> None:
    call: Call = await call_on("answer")
    call.say(STOP)
    await call.until(lambda: call.spoken())
    assert call.spoken() == ["There is nothing to stop."]
    assert call.turns == []


async def test_stop_said_over_the_voice_only_silences_it(call_on: Any) -> None:
    call: Call = await call_on("answer")
    call.conversation.greet()
    await call.until(lambda: call.speaker.playing)
    call.say(STOP)
    await call.until(lambda: call.conversation.stats.commands == 1)
    await asyncio.sleep(0.5)
    assert call.conversation.stats.barge_ins == 1
    assert len(call.spoken()) == 1  # the greeting, cut short, and nothing more
    assert [e["response"]["status"] for e in call.of("response.done")] == ["cancelled"]


async def test_how_is_it_going_tells_the_latest_progress(call_on: Any) -> None:
    call: Call = await call_on("work:3:1.5")
    call.say(REQUEST)
    await call.until(lambda: len(call.spoken()) == 1)  # the acknowledgement
    await call.until(lambda: len(call.of("hivecall.turn.progress")) >= 2)
    call.say(STATUS)
    await call.until(lambda: len(call.spoken()) == 2)
    status = call.spoken()[1]
    assert status.startswith("coder is still working: step ") and "of 3" in status, status
    await call.until(lambda: call.of("hivecall.turn.done"), timeout=20)
    await call.played_out()
    assert "All 3 parts are fine" in call.spoken()[-1]
    assert len(call.turns) == 1  # the question went to no agent


async def test_a_new_request_while_one_runs_is_a_second_turn(call_on: Any) -> None:
    call: Call = await call_on("work:2:1.5")
    call.say(REQUEST)
    await call.until(lambda: len(call.spoken()) == 1)
    call.say("Then open a pull request.")
    await call.until(lambda: len(call.of("hivecall.turn.done")) == 2, timeout=30)
    await call.played_out()
    assert len(call.turns) == 2
    spoken = call.spoken()
    assert spoken[:2] == ["coder is working on it.", "coder will do that too."], spoken
    answers = [s for s in spoken if "All 2 parts are fine" in s]
    assert len(answers) == 2
    # The command agent runs one turn at a time: the second waited for the first.
    first, _ = call.of("hivecall.turn.done")
    assert first["turn_id"] == call.of("hivecall.turn.started")[0]["turn_id"]


async def test_an_answer_waits_while_the_caller_talks(call_on: Any) -> None:
    call: Call = await call_on("work:2:0.4")
    call.say(REQUEST)
    await call.until(lambda: len(call.of("hivecall.turn.done")) == 0 and len(call.spoken()) == 1)
    # The caller talks on (the endpointer hears speech, not yet an utterance) past the turn's
    # end: the answer waits for them.
    talk = said("and when you are done with that I would like to hear about the tests too")
    call.conversation.feed(talk[: len(talk) // 2])
    assert call.conversation._vad.in_speech
    await call.until(lambda: call.of("hivecall.turn.done"), timeout=20)
    await asyncio.sleep(0.5)
    assert len(call.spoken()) == 1
    call.conversation.feed(talk[len(talk) // 2 :] + silence(1.0))
    await call.until(lambda: any("All 2 parts" in s for s in call.spoken()), timeout=20)


async def test_a_stopping_hub_says_the_turn_is_interrupted(call_on: Any) -> None:
    call: Call = await call_on("sleep")
    call.say(REQUEST)
    await call.until(lambda: len(call.spoken()) == 1)
    await call.played_out()
    await call.conversation.interrupted()  # what LocalCalls.aclose does first
    assert call.spoken()[-1] == "Sorry, coder was interrupted because the hub is shutting down."
    assert not call.speaker.playing  # heard to its end before the call goes
    heard = call.heard_phrases()
    assert overlap(heard[-1], "coder was interrupted because the hub is shutting down") >= 0.7


def test_a_call_is_tuned_from_the_settings(tmp_path: Path) -> None:
    base = Settings(home=tmp_path, owner_token=OWNER)
    tuned = Tuning.of(base.replace(local_silence_ms=700, voice_progress_s=30))
    assert (tuned.silence_ms, tuned.progress_s) == (700, 30)
    # Acknowledged after half a second, or sooner when the voice may wait less than that.
    assert Tuning.of(base).ack_s == ACK_AFTER_S == 0.5  # voice_ack_s 8, the default
    assert Tuning.of(base.replace(voice_ack_s=0)).ack_s == 0
