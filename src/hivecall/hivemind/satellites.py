"""Satellites' audio: `bin` frames in (voice.py says what upstream sends), turns and speech out.

RAW_AUDIO is cut into utterances by the hub's VAD; STT_AUDIO_HANDLE is one utterance, run as a
turn (answers.py) whose answer is spoken back; STT_AUDIO_TRANSCRIBE is only transcribed. A
bus `speak:synth` asks for the audio of some words. Transcribing runs off the event loop
(voice.Speech); audio the hub cannot take is refused with the reason.
"""

from __future__ import annotations

import logging

from hivecall.hivemind.answers import UTTERANCE, Answers
from hivecall.hivemind.connection import Connection
from hivecall.hivemind.tasks import Tasks
from hivecall.hivemind.voice import RATE, AudioRefused, Stream, audio_format, pcm_of
from hivecall.hivemind_protocol import binary
from hivecall.hivemind_protocol.binary import BinType
from hivecall.hivemind_protocol.wire import BusMessage, MsgType, bus

log = logging.getLogger(__name__)

AUDIO = (BinType.RAW_AUDIO, BinType.STT_AUDIO_HANDLE, BinType.STT_AUDIO_TRANSCRIBE)


class Satellites:
    def __init__(self, answers: Answers, tasks: Tasks) -> None:
        self._answers = answers
        self._speech = answers.speech
        self._tasks = tasks

    async def on_bin(self, conn: Connection, frame: binary.Frame) -> None:
        kind = frame.bin_type
        if kind not in AUDIO:
            await conn.refuse(MsgType.BIN, None, "this hub takes only audio bin frames")
            return
        if reason := self._speech.problem():
            await conn.refuse(MsgType.BIN, None, reason, code="speech_unavailable")
            return
        assert isinstance(frame.payload, bytes)
        try:
            rate, lang = audio_format(frame.metadata)
            if kind is BinType.RAW_AUDIO:
                if rate != RATE:
                    raise AudioRefused("RAW_AUDIO streams must be 16 kHz")
                await self._on_stream(conn, frame.payload, lang)
                return
            pcm, rate = pcm_of(frame.payload, rate)
        except AudioRefused as e:
            await conn.refuse(MsgType.BIN, None, str(e))
            return
        if not await self._answers.claim(conn, MsgType.BIN, None):
            return
        if kind is BinType.STT_AUDIO_TRANSCRIBE:
            self._tasks.start(self._transcribe_only(conn, pcm, rate, lang))
        else:
            self._tasks.start(self._spoken_turn(conn, pcm, rate, lang))

    async def on_synth(self, conn: Connection, m: BusMessage) -> None:
        """A bus `speak:synth`: the words' audio, unless it went out with the answer already."""
        text = m.data.get("utterance")
        if not isinstance(text, str) or not text.strip() or len(text) > 4000:
            await conn.refuse(MsgType.BUS, m.type, "utterance must be text")
            return
        if text in conn.pushed_tts:
            conn.pushed_tts.remove(text)
            return
        if reason := self._speech.problem():
            await conn.refuse(MsgType.BUS, m.type, reason, code="speech_unavailable")
            return
        lang = m.data.get("lang")
        lang = lang if isinstance(lang, str) and len(lang) <= 16 else "en-us"
        self._tasks.start(self._answers.send_audio(conn, text, lang))

    async def _on_stream(self, conn: Connection, chunk: bytes, lang: str | None) -> None:
        if conn.audio is None:
            conn.audio = Stream()
        for kind, audio in conn.audio.feed(chunk):
            if kind == "start":
                await conn.send(bus("recognizer_loop:record_begin", {}, {}))
                continue
            await conn.send(bus("recognizer_loop:record_end", {}, {}))
            if kind == "drop":
                continue
            if await self._answers.claim(conn, MsgType.BIN, None):
                self._tasks.start(self._spoken_turn(conn, audio, RATE, lang, echo=True))

    async def _transcribe(self, conn: Connection, pcm: bytes, rate: int) -> str:
        """The words in the audio ("" when the hub could not hear any, or failed to)."""
        try:
            return await self._speech.transcribe(pcm, rate)
        except Exception:
            log.exception(
                "HiveMind satellite audio not transcribed", extra={"client": conn.client.name}
            )
            return ""

    async def _spoken_turn(
        self, conn: Connection, pcm: bytes, rate: int, lang: str | None, *, echo: bool = False
    ) -> None:
        """One utterance heard and answered, on a claimed turn."""
        try:
            text = await self._transcribe(conn, pcm, rate)
            if not text:
                await conn.send(bus("recognizer_loop:speech.recognition.unknown", {}, {}))
                conn.turns -= 1
                return
            data = {"utterances": [text], "lang": lang or "en-us"}
            if echo:  # a stream: the satellite learns what the hub heard (as upstream tells it)
                heard = {"source": conn.peer, "destination": "skills"}
                await conn.send(bus(UTTERANCE, data, heard))
        except BaseException:
            conn.turns -= 1
            raise
        m = BusMessage(UTTERANCE, data, {"source": conn.peer, "destination": "HiveMind"})
        await self._answers.answer(conn, m, text, voice=True)  # gives the turn back

    async def _transcribe_only(
        self, conn: Connection, pcm: bytes, rate: int, lang: str | None
    ) -> None:
        try:
            text = await self._transcribe(conn, pcm, rate)
        finally:
            conn.turns -= 1
        found = [[text, 1.0]] if text else []
        data = {"transcriptions": found, "lang": lang or "en-us"}
        await conn.send(bus("recognizer_loop:transcribe.response", data, {}))
