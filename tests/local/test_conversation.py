"""The local speech pipeline without WebRTC: real VAD, Whisper and Piper, a real bridge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hivecall.agents.records import AgentCreate
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
from tests.local.speech import overlap, said, silence, transcribe

REQUEST = "What is the status of the build on my laptop?"
SECOND = "Please run the tests again."


class Harness:
    def __init__(self, hub: Hub, agent_id: str) -> None:
        self.hub = hub
        self.agent_id = agent_id
        self.events: list[dict[str, Any]] = []
        self.lines: list[CallLineIn] = []
        self.turns: list[str] = []
        self.speaker = SpeechTrack()
        self.conversation = LocalConversation(
            models=shared(),
            speaker=self.speaker,
            start_turn=self.start_turn,
            record=self.record,
            emit=self.events.append,
            agent_name="coder",
        )

    async def start_turn(self, text: str) -> TurnHandle:
        self.turns.append(text)
        return await self.hub.bridge.start(
            TurnRequest(agent=self.agent_id, message=text, source="local_call", session_id="s1")
        )

    async def record(self, lines: list[CallLineIn]) -> None:
        self.lines.extend(lines)

    def feed(self, pcm: bytes) -> None:
        self.conversation.feed(pcm)

    async def until(self, check: Any, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.02)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def heard_back(self) -> str:
        """Transcribe everything queued on the speaker (the hub's voice)."""
        pcm = bytes(self.speaker._pending)
        return transcribe(resample(np.frombuffer(pcm, dtype=np.int16), TTS_RATE, 16000))


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    settings = Settings(home=tmp_path / "home", owner_token="t" * 40)
    hub = await Hub.open(settings, environ={})
    agent = await hub.agents.create(AgentCreate(name="coder", runtime="echo"))
    h = Harness(hub, agent.id)
    try:
        yield h
    finally:
        await h.conversation.aclose()
        await hub.aclose()


async def test_an_utterance_becomes_one_turn_and_a_spoken_answer(harness: Harness) -> None:
    harness.feed(silence(0.5) + said(REQUEST) + silence(1.0))
    await harness.until(lambda: "response.done" in harness.types())
    assert len(harness.turns) == 1
    assert overlap(harness.turns[0], REQUEST) >= 0.8, harness.turns
    types = harness.types()
    assert types.index("conversation.item.input_audio_transcription.completed") < types.index(
        "hivecall.turn.started"
    )
    assert types.index("hivecall.turn.done") < types.index("response.created")
    # The echo runtime says the request back: the hub's voice carries those words.
    assert overlap(harness.heard_back(), REQUEST) >= 0.7
    deltas = "".join(
        e["delta"] for e in harness.events if e["type"] == "response.output_audio_transcript.delta"
    )
    assert overlap(deltas, REQUEST) >= 0.8
    kinds = [ln.kind for ln in harness.lines]
    assert kinds == ["user", "agent"]
    assert harness.lines[0].turn_id is not None


async def test_silence_and_noise_make_no_turn(harness: Harness) -> None:
    rng = np.random.default_rng(7)
    hiss = (rng.normal(0, 30, 16000 * 2)).astype(np.int16).tobytes()  # quiet background noise
    harness.feed(silence(3.0) + hiss + silence(1.0))
    await asyncio.sleep(0.5)
    assert harness.turns == []
    assert harness.events == []
    assert harness.conversation.stats.utterances == 0


async def test_two_utterances_make_two_turns_in_order(harness: Harness) -> None:
    harness.feed(said(REQUEST) + silence(1.0) + said(SECOND) + silence(1.0))
    await harness.until(lambda: harness.types().count("response.done") == 2, timeout=30)
    assert len(harness.turns) == 2
    assert overlap(harness.turns[0], REQUEST) >= 0.8
    assert overlap(harness.turns[1], SECOND) >= 0.8
    agent_lines = [ln.text for ln in harness.lines if ln.kind == "agent"]
    assert overlap(agent_lines[0], REQUEST) >= 0.8
    assert overlap(agent_lines[1], SECOND) >= 0.8


async def test_a_short_pause_inside_a_sentence_does_not_cut_it(harness: Harness) -> None:
    harness.feed(said("Check the build") + silence(0.3) + said("on my laptop.") + silence(1.0))
    await harness.until(lambda: "response.done" in harness.types())
    assert len(harness.turns) == 1
    assert overlap(harness.turns[0], "check the build on my laptop") >= 0.8


async def test_speaking_over_the_agent_stops_its_voice(harness: Harness) -> None:
    harness.conversation.greet()
    await harness.until(lambda: harness.speaker.playing)
    assert harness.speaker.queued_seconds > 0.5
    harness.feed(said(SECOND) + silence(1.0))
    await harness.until(lambda: harness.conversation.stats.barge_ins == 1)
    # The greeting's voice is gone at once; then the new answer is queued after the turn.
    await harness.until(lambda: harness.types().count("response.done") == 2)
    assert harness.conversation.stats.barge_ins == 1
    assert overlap(harness.heard_back(), SECOND) >= 0.7
    assert "go ahead" not in harness.heard_back().lower()
