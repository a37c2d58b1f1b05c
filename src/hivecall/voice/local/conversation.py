"""One local call's conversation: utterances in, bridge turns, spoken answers out.

It knows nothing of WebRTC: `feed()` takes 16 kHz mono 20 ms frames, what the hub says goes to
a `SpeechTrack`, and what the caller's page should know goes out through `emit` as the same
events OpenAI Realtime sends (so one call modal serves both), plus hivecall's own while the
agent works: `hivecall.turn.started`, `hivecall.turn.progress` {turn_id, text} for each of the
turn's progress lines, and `hivecall.turn.done`.

Hearing and speaking run apart, so a long turn never holds up the call. Utterances are
transcribed one after another; each becomes a turn, or, when it is "stop" or "how is it
going?", a command on the turns running (commands.py). Everything the hub says goes through one
queue of lines, spoken one after another and only while the caller is not talking: a short
acknowledgement when a turn is still running after `Tuning.ack_s`, the turn's latest progress at
most every `Tuning.progress_s` when the call is otherwise quiet, and each answer as soon as its
turn is done. Barge-in (the caller speaking while the hub talks) stops the voice at once and
drops the rest of that line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from hivecall.calls.local import Tuning
from hivecall.calls.records import CallLineIn
from hivecall.speakable import speakable
from hivecall.speech import workers
from hivecall.speech.models import Models
from hivecall.speech.stt import pcm16_to_float
from hivecall.speech.vad import FRAME_BYTES, Endpointer
from hivecall.turns.handle import TurnHandle
from hivecall.voice.local.commands import command
from hivecall.voice.local.track import SpeechTrack

log = logging.getLogger(__name__)

# The process's one recognition and one synthesis thread (speech/workers.py): a guess and a
# final transcription never fight over the two cores, and one answer's voice is made clause
# after clause.

Emit = Callable[[dict[str, Any]], None]
StartTurn = Callable[[str], Awaitable[TurnHandle]]
CancelTurn = Callable[[str], bool]
Record = Callable[[list[CallLineIn]], Awaitable[None]]
LineKind = Literal["greeting", "ack", "progress", "answer", "note"]

PROGRESS_CHARS = 100  # a spoken progress line is brief: longer ones are cut at a word
NARRATE_EVERY_S = 0.2  # how often a quiet moment for a progress line is looked for
FRAME_S = 0.02
INTERRUPTED_WAIT_S = 8.0  # the most a stopping hub waits for a call to hear why its turn ends


@dataclass
class _Guess:
    """A transcription started at a pause, on the audio up to the pause."""

    size: int
    future: Future[str]


@dataclass
class _Utterance:
    audio: bytes
    guess: _Guess | None
    cut: bool  # its start stopped the hub's voice (barge-in)
    pending: bool = True  # still counted in LocalConversation._hearing


@dataclass
class _Running:
    """A turn this call started, until it ends."""

    handle: TurnHandle
    latest: str = ""  # its newest progress line
    told: str = ""  # the last of them the caller heard
    acknowledged: bool = False  # progress is told only after the acknowledgement


@dataclass(frozen=True)
class _Line:
    text: str
    kind: LineKind
    turn_id: str | None = None


@dataclass
class _Stats:
    utterances: int = 0
    dropped: int = 0
    guesses_used: int = 0
    barge_ins: int = 0
    commands: int = 0
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
        cancel_turn: CancelTurn | None = None,
    ) -> None:
        self._tuning = tuning = tuning or Tuning()
        self.models = models
        self.speaker = speaker
        self.emit = emit
        self._start_turn = start_turn
        self._cancel_turn = cancel_turn
        self._record = record
        self.agent_name = agent_name
        self._vad = Endpointer(
            silence_ms=tuning.silence_ms,
            pause_ms=tuning.pause_ms,
            min_speech_ms=tuning.min_speech_ms,
        )
        self._pending = bytearray()
        self._guess: _Guess | None = None
        self._cut_now = False  # the utterance being spoken stopped the hub's voice
        self._utterances: asyncio.Queue[_Utterance] = asyncio.Queue()
        self._hearing = 0  # utterances not yet transcribed and acted on
        # Set while the caller is neither talking nor waiting for what they said to be acted on.
        self._floor = asyncio.Event()
        self._floor.set()
        self._lines: asyncio.Queue[_Line] = asyncio.Queue()
        self._holding: _Line | None = None  # taken from the queue, not yet done with
        self._speaking: str | None = None  # the response id being spoken
        self._cut: set[str] = set()  # responses stopped by barge-in
        self._running: dict[str, _Running] = {}  # by turn id, oldest first
        self._followers: set[asyncio.Task[None]] = set()
        self._last_told = -math.inf  # loop time of the last acknowledgement or progress line
        self._greeted = False
        self.stats = _Stats()
        # The acknowledgements' voice is made ahead: it is the first thing heard of a long turn.
        self._voices: dict[str, Future[bytes]] = {}
        for text in (self._ack_line(alone=True), self._ack_line(alone=False)):
            for clause in _clauses(text):
                self._voices[clause] = workers.TTS.submit(self._synthesize, clause)
        self._speak_task = asyncio.create_task(self._speak(), name="local-call-speak")
        self._tasks = [
            asyncio.create_task(self._hear(), name="local-call-hear"),
            self._speak_task,
            asyncio.create_task(self._narrate(), name="local-call-narrate"),
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
                    self._cut_now = self._barge_in()
                elif event.kind == "pause":
                    self._guess = _Guess(len(event.audio), self._transcribe_soon(event.audio))
                elif event.kind == "resume":
                    self._guess = None
                elif event.kind == "end":
                    # The guess goes with its own utterance: the next one may pause meanwhile.
                    self._hearing += 1
                    self._utterances.put_nowait(_Utterance(event.audio, self._guess, self._cut_now))
                    self._guess = None
                else:
                    self.stats.dropped += 1
                    self._guess = None
        self._update_floor()

    def _update_floor(self) -> None:
        if self._vad.in_speech or self._hearing:
            self._floor.clear()
        else:
            self._floor.set()

    def _transcribe_soon(self, audio: bytes) -> Future[str]:
        transcriber = self.models.transcriber
        return workers.STT.submit(lambda: transcriber().transcribe(pcm16_to_float(audio)))

    def _barge_in(self) -> bool:
        """Stop the hub's voice (the caller started talking); True if it was speaking."""
        if self._speaking is None and not self.speaker.playing:
            return False
        self.speaker.flush()
        if self._speaking is not None:
            self._cut.add(self._speaking)
        self.stats.barge_ins += 1
        return True

    # -- utterances become turns or commands --------------------------------------------------

    async def _hear(self) -> None:
        while True:
            utterance = await self._utterances.get()
            try:
                await self._one_utterance(utterance)
            except Exception:
                log.exception("a local call could not hear an utterance")
                self.emit(_error("stt_failed", "the hub could not transcribe that"))
            finally:
                self._heard(utterance)

    def _heard(self, utterance: _Utterance) -> None:
        """The utterance is acted on: what the hub says next need not wait for it."""
        if utterance.pending:
            utterance.pending = False
            self._hearing -= 1
            self._update_floor()

    async def _one_utterance(self, utterance: _Utterance) -> None:
        audio, guess = utterance.audio, utterance.guess
        if guess is not None and guess.size == len(audio):
            self.stats.guesses_used += 1
            text = await asyncio.wrap_future(guess.future)
        else:
            text = await workers.recognise(
                lambda: self.models.transcriber().transcribe(pcm16_to_float(audio))
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
        said = command(text, self.agent_name)
        if said == "cancel" or (said == "status" and self._running):
            self.stats.commands += 1
            if said == "cancel":
                self._stop(quietly=utterance.cut)
            else:
                self._tell_status()
            self._heard(utterance)
            await self._record([CallLineIn(kind="user", text=text[:4000])])
            return
        handle = await self._start_turn(text)
        self._follow(handle, item)
        self._heard(utterance)
        await self._record([CallLineIn(kind="user", text=text[:4000], turn_id=handle.turn_id)])

    def _stop(self, *, quietly: bool) -> None:
        """ "Stop": nothing more is said of what was queued, and this call's running turns are
        cancelled (each says "Stopped NAME." when it ends). With nothing running, the caller
        hears so, unless the word was for the hub's voice, which it has already cut."""
        self._drop_lines()
        cancel = self._cancel_turn
        stopped = [t for t in list(self._running) if cancel is not None and cancel(t)]
        if not stopped and not quietly:
            self._queue(_Line("There is nothing to stop.", "note"))

    def _tell_status(self) -> None:
        """ "How is it going?" while a turn runs: its latest progress, now."""
        runs = list(self._running.values())
        run = next((r for r in runs if r.latest), runs[0])
        if run.latest:
            text = f"{self.agent_name} is still working: {_brief(run.latest)}"
        else:
            text = f"{self.agent_name} is still working on it."
        run.told = run.latest
        self._last_told = asyncio.get_running_loop().time()
        self._queue(_Line(text, "note", run.handle.turn_id))

    # -- following the turns ------------------------------------------------------------------

    def _follow(self, handle: TurnHandle, item: str) -> None:
        self.emit({"type": "hivecall.turn.started", "turn_id": handle.turn_id, "item_id": item})
        run = _Running(handle)
        self._running[handle.turn_id] = run
        ack = asyncio.get_running_loop().call_later(self._tuning.ack_s, self._acknowledge, run)
        task = asyncio.create_task(self._follow_turn(run, ack), name="local-call-turn")
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)

    async def _follow_turn(self, run: _Running, ack: asyncio.TimerHandle) -> None:
        handle = run.handle
        try:
            async for event in handle.events():
                if event.kind == "progress":
                    run.latest = str(event.data.get("text", ""))
                    self.emit(
                        {
                            "type": "hivecall.turn.progress",
                            "turn_id": handle.turn_id,
                            "text": run.latest,
                        }
                    )
            result = await handle.result()
        finally:
            ack.cancel()
            self._running.pop(handle.turn_id, None)
        self.emit(
            {"type": "hivecall.turn.done", "turn_id": handle.turn_id, "status": result.status}
        )
        # Done, failed, cancelled ("Stopped NAME.") or interrupted: the bridge's spoken text.
        self._queue(_Line(result.spoken, "answer", handle.turn_id))

    def _ack_line(self, *, alone: bool) -> str:
        if alone:
            return f"{self.agent_name} is working on it."
        return f"{self.agent_name} will do that too."

    def _acknowledge(self, run: _Running) -> None:
        if run.handle.turn_id not in self._running:
            return
        run.acknowledged = True
        self._last_told = asyncio.get_running_loop().time()
        text = self._ack_line(alone=len(self._running) == 1)
        self._queue(_Line(text, "ack", run.handle.turn_id))

    async def _narrate(self) -> None:
        """A progress line now and then while turns run: only in a quiet moment, at most every
        `progress_s`, and only when there is something new to tell."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(NARRATE_EVERY_S)
            if not self._running or not self._quiet():
                continue
            if loop.time() - self._last_told < self._tuning.progress_s:
                continue
            news = (r for r in self._running.values() if r.acknowledged and r.latest != r.told)
            run = next(news, None)
            if run is None:
                continue
            run.told = run.latest
            self._last_told = loop.time()
            # Named like the acknowledgement: a bare "Still working" opening an utterance is
            # misheard ("So working") by small recognisers, and the name says whose work it is.
            line = f"{self.agent_name} is still working: {_brief(run.latest)}"
            self._queue(_Line(line, "progress", run.handle.turn_id))

    def _quiet(self) -> bool:
        """Nothing is being said, queued to be said, or heard."""
        return (
            self._holding is None
            and self._lines.empty()
            and self._speaking is None
            and not self.speaker.playing
            and not self._vad.in_speech
            and not self._hearing
        )

    # -- the hub speaks -----------------------------------------------------------------------

    def greet(self) -> None:
        """Say hello once (the page asks with `response.create` when its channel opens)."""
        if not self._greeted:
            self._greeted = True
            self._queue(_Line(f"Hi, it's {self.agent_name}. Go ahead.", "greeting"))

    def _queue(self, line: _Line) -> None:
        if line.text:
            self._lines.put_nowait(line)

    def _drop_lines(self) -> None:
        while not self._lines.empty():
            self._lines.get_nowait()

    async def _speak(self) -> None:
        while True:
            self._holding = await self._lines.get()
            line = self._holding
            try:
                # The caller has the floor while talking, and what they said is acted on first
                # (it may be "stop").
                while not self._floor.is_set():
                    await self._floor.wait()
                # An acknowledgement or progress line of a turn that has ended meanwhile is
                # stale: its answer follows.
                if line.kind in ("ack", "progress") and line.turn_id not in self._running:
                    continue
                await self.say(line.text, turn_id=line.turn_id)
            except Exception:
                log.exception("a local call could not speak")
                self.emit(_error("tts_failed", "the hub could not speak the answer"))
            finally:
                self._holding = None

    async def say(self, text: str, *, turn_id: str | None = None) -> str:
        """Speak `text` clause by clause; returns what was spoken before any barge-in."""
        response = f"resp_{uuid.uuid4().hex[:16]}"
        self._speaking = response
        created = {"id": response, "status": "in_progress"}
        self.emit({"type": "response.created", "response": created})
        spoken: list[str] = []
        try:
            for clause in _clauses(text):
                audio = await self._voice(clause)
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
            await self._record([CallLineIn(kind="agent", text=words[:4000], turn_id=turn_id)])
        return words

    async def _voice(self, clause: str) -> bytes:
        made = self._voices.get(clause)
        if made is not None:
            return await asyncio.wrap_future(made)
        return await workers.synthesise(lambda: self._synthesize(clause))

    def _synthesize(self, clause: str) -> bytes:
        return self.models.synthesizer().pcm(clause)

    # -- the end ------------------------------------------------------------------------------

    async def interrupted(self) -> None:
        """The hub is stopping: if a turn of this call still runs, say it is interrupted (the
        bridge's own words for it) and wait, a little, until that has been heard."""
        if not self._running:
            return
        self._speak_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._speak_task
        self._drop_lines()
        self.speaker.flush()
        turn_id = next(iter(self._running))
        text = f"Sorry, {self.agent_name} was interrupted because the hub is shutting down."
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(INTERRUPTED_WAIT_S):
                await self.say(text, turn_id=turn_id)
                await asyncio.sleep(self.speaker.queued_seconds + FRAME_S)

    async def aclose(self) -> None:
        """Stop hearing and speaking. The agent's turns go on: a caller who hangs up does not
        lose the work, which the call's history shows."""
        tasks = [*self._tasks, *self._followers]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for made in self._voices.values():
            made.cancel()
        self.speaker.flush()


def _brief(progress: str) -> str:
    """A progress line as the voice says it: plain words, short, one sentence."""
    words = speakable(progress, max_chars=10_000)
    if len(words) > PROGRESS_CHARS:
        words = words[:PROGRESS_CHARS].rsplit(" ", 1)[0]
    return words.rstrip(" .,;:…") + "."


def _clauses(text: str) -> list[str]:
    from hivecall.speech.tts import clauses

    return clauses(text)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "server_error", "code": code, "message": message}}
