"""The websocket form on real audio: it hears Piper's speech through the hub's VAD and Whisper,
and speaks with Piper; driven by the unmodified openai SDK.

Without the speech models these skip (or fail, with HIVECALL_TEST_REQUIRE_BROWSER=1). The
SILENCE of a stand-in that does not speak is test_websocket.py's test_audio_over_the_websocket.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import pytest
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection

from hivecall.speech import models
from tests.netaddr import skip_or_fail
from tests.realtime_standin.conftest import assert_sdk_parses
from tests.standins.realtime import OPENING, RealtimeStandin, Script, Turn, relay_script

RATE = 24000  # the GA API's audio/pcm
SENTENCE = "Please list the files in the project folder."
ANSWER = "There are three files in the folder: the readme, the make file and the license."
# What the hivecall worker sends (src/hivecall/cloud/job.py): the model never answers by itself.
ASKED_ONLY = {
    "type": "realtime",
    "audio": {
        "input": {
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {
                "type": "semantic_vad",
                "eagerness": "auto",
                "create_response": False,
                "interrupt_response": False,
            },
        }
    },
}
WAIT = 60.0  # seconds for an event; Whisper and Piper load on first use, the machine is busy


@pytest.fixture(autouse=True)
def _speech_models() -> None:
    if reason := models.problem():
        skip_or_fail(reason)


def said(text: str) -> bytes:
    """`text` spoken by the hub's Piper voice, as 24 kHz pcm16 (what a client appends)."""
    from hivecall.speech.tts import RATE as TTS_RATE
    from hivecall.speech.tts import resample
    from tests.local.speech import STEADY

    pcm = models.shared().synthesizer().pcm(text, STEADY)
    return resample(np.frombuffer(pcm, dtype=np.int16), TTS_RATE, RATE)


def transcribe(pcm24: bytes) -> str:
    """What Whisper hears in 24 kHz pcm16 (the model's audio deltas)."""
    from hivecall.speech.tts import resample
    from tests.local.speech import transcribe as transcribe16k

    return transcribe16k(resample(np.frombuffer(pcm24, dtype=np.int16), RATE, 16000))


def overlap(heard: str, expected: str) -> float:
    from tests.local.speech import overlap as word_overlap

    return word_overlap(heard, expected)


async def append(conn: AsyncRealtimeConnection, pcm: bytes, *, chunk_ms: int = 40) -> None:
    """Append `pcm` in chunks, as livekit-agents does, then a second of silence."""
    pcm += bytes(RATE * 2)
    size = RATE * 2 * chunk_ms // 1000
    for i in range(0, len(pcm), size):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + size]).decode())


async def until(conn: AsyncRealtimeConnection, kind: str, into: list[Any]) -> Any:
    """Read events into `into` until one of type `kind`; return it."""
    async with asyncio.timeout(WAIT):
        while True:
            event = await conn.recv()
            into.append(event)
            assert event.type != "error", event
            if event.type == kind:
                return event


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


async def test_it_hears_an_utterance_and_answers_only_when_asked(
    openai_client: AsyncOpenAI, realtime_standin: RealtimeStandin
) -> None:
    realtime_standin.hears = True
    speech = await asyncio.to_thread(said, SENTENCE)
    heard: list[Any] = []
    asked: list[Any] = []
    async with openai_client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session=ASKED_ONLY)  # type: ignore[arg-type]
        await append(conn, speech)
        done = await until(conn, "conversation.item.input_audio_transcription.completed", heard)
        await conn.response.create(response={"metadata": {"client_event_id": "asked"}})
        await until(conn, "response.done", asked)

    seen = types(heard)
    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.completed",
    ]
    assert [t for t in seen if t in order] == order
    assert "response.created" not in seen  # create_response=false: the model waited
    started, stopped, committed = (next(e for e in heard if e.type == t) for t in order[:3])
    assert started.item_id == stopped.item_id == committed.item_id == done.item_id
    total_ms = (len(speech) + RATE * 2) * 1000 // (RATE * 2)
    assert 0 <= started.audio_start_ms < stopped.audio_end_ms <= total_ms
    (user,) = [e.item for e in heard if e.type == "conversation.item.added"]
    assert (user.id, user.role, user.content[0].type) == (done.item_id, "user", "input_audio")
    assert overlap(done.transcript, SENTENCE) >= 0.8, done.transcript

    # The first response is the one the client asked for.
    created = next(e for e in asked if e.type == "response.created")
    assert created.response.metadata == {"client_event_id": "asked"}
    (conversation,) = realtime_standin.sockets
    assert conversation.heard == [done.transcript]
    assert conversation.heard_spans == [(started.audio_start_ms, stopped.audio_end_ms)]
    assert conversation.input_audio_bytes == len(speech) + RATE * 2
    assert_sdk_parses(conversation.sent)


async def test_the_relay_passes_on_what_it_heard_and_speaks_the_answer(
    openai_client: AsyncOpenAI, realtime_standin: RealtimeStandin
) -> None:
    realtime_standin.hears = realtime_standin.speaks = True
    realtime_standin.script = relay_script()
    speech = await asyncio.to_thread(said, SENTENCE)
    events: list[Any] = []
    async with openai_client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session=ASKED_ONLY)  # type: ignore[arg-type]
        # A greeting (nothing heard yet) says the opening.
        await conn.response.create(response={"instructions": "Greet the caller."})
        greeting = await until(conn, "response.done", events)
        await append(conn, speech)
        done = await until(conn, "conversation.item.input_audio_transcription.completed", events)
        await conn.response.create()
        call = await until(conn, "response.function_call_arguments.done", events)
        assert call.name == "ask_computer_agent"
        assert json.loads(call.arguments) == {"message": done.transcript}
        await until(conn, "response.done", events)
        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": ANSWER}
        )
        await conn.response.create()
        answer: list[Any] = []
        spoken = await until(conn, "response.done", answer)

    assert greeting.response.status == "completed"
    assert greeting.response.output[0].content[0].transcript == OPENING
    assert overlap(done.transcript, SENTENCE) >= 0.8, done.transcript
    assert spoken.response.status == "completed"
    deltas = [e for e in answer if e.type == "response.output_audio_transcript.delta"]
    assert len(deltas) > 1 and "".join(e.delta for e in deltas) == ANSWER
    pcm = b"".join(
        base64.b64decode(e.delta) for e in answer if e.type == "response.output_audio.delta"
    )
    assert len(pcm) > RATE * 2  # more than a second of speech, not 20 ms of silence a word
    words = await asyncio.to_thread(transcribe, pcm)
    assert overlap(words, ANSWER) >= 0.8, words

    (conversation,) = realtime_standin.sockets
    assert conversation.transcripts == [OPENING, ANSWER]
    assert conversation.heard == [done.transcript]
    assert conversation.spoken_audio_bytes > len(pcm)  # the opening was spoken too
    assert_sdk_parses(conversation.sent)


async def test_with_create_response_it_answers_what_it_heard_by_itself(
    openai_client: AsyncOpenAI, realtime_standin: RealtimeStandin
) -> None:
    """The API's default turn detection (server_vad, create_response on): no response.create."""
    realtime_standin.hears = True
    realtime_standin.script = relay_script()
    speech = await asyncio.to_thread(said, SENTENCE)
    events: list[Any] = []
    async with openai_client.realtime.connect(model="gpt-realtime") as conn:
        await append(conn, speech)
        call = await until(conn, "response.function_call_arguments.done", events)
        await until(conn, "response.done", events)

    seen = types(events)
    done = next(e for e in events if e.type.endswith("input_audio_transcription.completed"))
    assert seen.index(done.type) < seen.index("response.created")
    assert json.loads(call.arguments) == {"message": done.transcript}
    (conversation,) = realtime_standin.sockets
    assert "response.create" not in conversation.received_types
    assert_sdk_parses(conversation.sent)


async def test_a_spoken_answer_can_be_cancelled_between_chunks(
    openai_client: AsyncOpenAI, realtime_standin: RealtimeStandin
) -> None:
    realtime_standin.speaks = True
    realtime_standin.script = Script(turns=[Turn.say(ANSWER)], delta_gap=0.05)
    events: list[Any] = []
    async with openai_client.realtime.connect(model="gpt-realtime") as conn:
        await conn.response.create()
        await until(conn, "response.output_audio.delta", events)
        await conn.response.cancel()
        done = await until(conn, "response.done", events)

    assert done.response.status == "cancelled"
    assert done.response.status_details.reason == "client_cancelled"
    said_so_far = "".join(e.delta for e in events if e.type.endswith("transcript.delta"))
    assert said_so_far != ANSWER and ANSWER.startswith(said_so_far)
    assert "response.output_audio.done" not in types(events)


async def test_speech_during_a_response_interrupts_it(
    openai_client: AsyncOpenAI, realtime_standin: RealtimeStandin
) -> None:
    """interrupt_response (the API's default): the user talking over the model cancels it."""
    realtime_standin.hears = True
    realtime_standin.script = Script(turns=[Turn.say(ANSWER)], delta_gap=0.2)
    speech = await asyncio.to_thread(said, SENTENCE)
    events: list[Any] = []
    async with openai_client.realtime.connect(model="gpt-realtime") as conn:
        await conn.response.create()
        await until(conn, "response.output_audio_transcript.delta", events)
        await append(conn, speech)
        done = await until(conn, "response.done", events)

    assert done.response.status == "cancelled"
    assert done.response.status_details.reason == "turn_detected"
    assert "input_audio_buffer.speech_started" in types(events)
