"""One local call's conversation: utterances in, bridge turns, spoken answers out.

It knows nothing of WebRTC: `feed()` takes 16 kHz mono 20 ms frames, answers go to a
`SpeechTrack`, and what the caller's page should know goes out through `emit` as the same
events OpenAI Realtime sends (so one call modal serves both), plus two of hivecall's own:
`hivecall.turn.started` / `hivecall.turn.done` while the agent works.

Two stages keep turns in order without one waiting on the other's audio: utterances are
transcribed and started as turns one after another, and answers are spoken one after another,
in the order the turns started. Barge-in (the caller speaking while the agent talks) stops the
voice at once and drops the rest of that answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hivecall.bridge import TurnHandle
from hivecall.calls.records import CallLineIn
from hivecall.voice.local.models import Models
from hivecall.voice.local.service import Tuning
from hivecall.voice.local.stt import pcm16_to_float
from hivecall.voice.local.track import SpeechTrack
from hivecall.voice.local.vad import FRAME_BYTES, Endpointer

log = logging.getLogger(__name__)

# One thread each: a guess and a final transcription never fight over the two cores, and the
# voice of one answer is made clause after clause.
_STT = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hivecall-stt")
_TTS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hivecall-tts")

Emit = Callable[[dict[str, Any]], None]
StartTurn = Callable[[str], Awaitable[TurnHandle]]
Record = Callable[[list[CallLineIn]], Awaitable[None]]


@dataclass
class _Guess:
    """A transcription started at a pause, on the audio up to the pause."""

    size: int
    future: Future[str]


@dataclass
class _Stats:
    utterances: int = 0
    dropped: int = 0
    guesses_used: int = 0
    barge_ins: int = 0
    stt_seconds: list[float] = field(default_factory=list)


class LocalConversation:
    def __init__(
        self,
        *,
        models: Models,
        speaker: SpeechTrack,
        start_turn: StartTurn,
        record: Record,
        emit: Emit,
        agent_name: str,
        tuning: Tuning | None = None,
    ) -> None:
        tuning = tuning or Tuning()
        self.models = models
        self.speaker = speaker
        self.emit = emit
        self._start_turn = start_turn
        self._record = record
        self.agent_name = agent_name
        self._vad = Endpointer(
            silence_ms=tuning.silence_ms,
            pause_ms=tuning.pause_ms,
            min_speech_ms=tuning.min_speech_ms,
        )
        self._pending = bytearray()
        self._guess: _Guess | None = None
        self._utterances: asyncio.Queue[tuple[bytes, _Guess | None]] = asyncio.Queue()
        self._answers: asyncio.Queue[tuple[str, Awaitable[str] | str]] = asyncio.Queue()
        self._speaking: str | None = None  # the response id being spoken
        self._cut: set[str] = set()  # responses stopped by barge-in
        self._greeted = False
        self.stats = _Stats()
        self._tasks = [
            asyncio.create_task(self._hear(), name="local-call-hear"),
            asyncio.create_task(self._answer(), name="local-call-answer"),
        ]

    # -- input --------------------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        """Caller audio: 16 kHz mono 16-bit, any length (cut into 20 ms frames here)."""
        self._pending += pcm
        while len(self._pending) >= FRAME_BYTES:
            frame = bytes(self._pending[:FRAME_BYTES])
            del self._pending[:FRAME_BYTES]
            for event in self._vad.feed(frame):
                if event.kind == "start":
                    self._barge_in()
                elif event.kind == "pause":
                    self._guess = _Guess(len(event.audio), self._transcribe_soon(event.audio))
                elif event.kind == "resume":
                    self._guess = None
                elif event.kind == "end":
                    # The guess goes with its own utterance: the next one may pause meanwhile.
                    self._utterances.put_nowait((event.audio, self._guess))
                    self._guess = None
                else:
                    self.stats.dropped += 1
                    self._guess = None

    def _transcribe_soon(self, audio: bytes) -> Future[str]:
        transcriber = self.models.transcriber
        return _STT.submit(lambda: transcriber().transcribe(pcm16_to_float(audio)))

    def _barge_in(self) -> None:
        if self._speaking is None and not self.speaker.playing:
            return
        self.speaker.flush()
        if self._speaking is not None:
            self._cut.add(self._speaking)
        self.stats.barge_ins += 1

    # -- utterances become turns --------------------------------------------------------------

    async def _hear(self) -> None:
        while True:
            audio, guess = await self._utterances.get()
            try:
                await self._one_utterance(audio, guess)
            except Exception:
                log.exception("a local call could not hear an utterance")
                self.emit(_error("stt_failed", "the hub could not transcribe that"))

    async def _one_utterance(self, audio: bytes, guess: _Guess | None) -> None:
        loop = asyncio.get_running_loop()
        if guess is not None and guess.size == len(audio):
            self.stats.guesses_used += 1
            text = await asyncio.wrap_future(guess.future)
        else:
            text = await loop.run_in_executor(
                _STT, lambda: self.models.transcriber().transcribe(pcm16_to_float(audio))
            )
        if not text:
            self.stats.dropped += 1
            return
        self.stats.utterances += 1
        item = f"item_{uuid.uuid4().hex[:16]}"
        self.emit(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item,
                "content_index": 0,
                "transcript": text,
            }
        )
        handle = await self._start_turn(text)
        await self._record([CallLineIn(kind="user", text=text[:4000], turn_id=handle.turn_id)])
        self.emit({"type": "hivecall.turn.started", "turn_id": handle.turn_id, "item_id": item})
        self._answers.put_nowait((handle.turn_id, self._spoken(handle)))

    async def _spoken(self, handle: TurnHandle) -> str:
        result = await handle.result()
        self.emit(
            {"type": "hivecall.turn.done", "turn_id": handle.turn_id, "status": result.status}
        )
        return result.spoken

    # -- answers are spoken -------------------------------------------------------------------

    def greet(self) -> None:
        """Say hello once (the page asks with `response.create` when its channel opens)."""
        if not self._greeted:
            self._greeted = True
            self._answers.put_nowait(("greeting", f"Hi, it's {self.agent_name}. Go ahead."))

    async def _answer(self) -> None:
        while True:
            _, answer = await self._answers.get()
            try:
                text = answer if isinstance(answer, str) else await answer
                await self.say(text)
            except Exception:
                log.exception("a local call could not speak an answer")
                self.emit(_error("tts_failed", "the hub could not speak the answer"))

    async def say(self, text: str) -> str:
        """Speak `text` clause by clause; returns what was spoken before any barge-in."""
        response = f"resp_{uuid.uuid4().hex[:16]}"
        self._speaking = response
        created = {"id": response, "status": "in_progress"}
        self.emit({"type": "response.created", "response": created})
        loop = asyncio.get_running_loop()
        tts = await loop.run_in_executor(_TTS, self.models.synthesizer)
        spoken: list[str] = []
        try:
            for clause in _clauses(text):
                audio = await loop.run_in_executor(_TTS, tts.pcm, clause)
                if response in self._cut:
                    break
                self.speaker.play(audio)
                spoken.append(clause)
                self.emit(
                    {
                        "type": "response.output_audio_transcript.delta",
                        "response_id": response,
                        "delta": clause if len(spoken) == 1 else f" {clause}",
                    }
                )
        finally:
            cut = response in self._cut
            self._cut.discard(response)
            self._speaking = None
            status = "cancelled" if cut else "completed"
            self.emit({"type": "response.done", "response": {"id": response, "status": status}})
        words = " ".join(spoken)
        if words:
            await self._record([CallLineIn(kind="agent", text=words[:4000])])
        return words

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.speaker.flush()


def _clauses(text: str) -> list[str]:
    from hivecall.voice.local.tts import clauses

    return clauses(text)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "server_error", "code": code, "message": message}}
