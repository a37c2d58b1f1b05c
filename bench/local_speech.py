"""Local calls: from the end of the caller's speech to the first audio the hub sends back.

The hub's own pipeline, in this process: a real Hub (SQLite in a temporary home, the bridge,
the instant `echo` runtime), a LocalConversation with the real webrtcvad, Whisper tiny.en and
Piper, and a SpeechTrack drained every 20 ms as aiortc's sender drains it. Spoken requests
(Piper's voice, 16 kHz) are fed in real time in 20 ms frames, followed by silence, like a
microphone. For each utterance:

- end of speech = the moment the last frame louder than -40 dBFS was fed (what a listener
  would call the end; the hub cannot know it yet, it needs `local_silence_ms` of silence first);
- first audio = the moment the track handed out the first frame of the answer;
- latency = first audio - end of speech, so it includes the silence the endpointer waits for,
  Whisper, the bridge turn (written to the store), and Piper's first clause.

WebRTC itself (Opus encoding ~0.1 ms a frame, loopback UDP) is left out: it is the same for any
pipeline and tiny here. Also reported: the real-time factor (processing time / audio length)
of Whisper on each request and of Piper on each answer, measured apart.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import BenchError, Options, Result, machine, table
from hivecall.agents.records import AgentCreate
from hivecall.calls.local import Tuning
from hivecall.calls.records import CallLineIn
from hivecall.hub import Hub
from hivecall.settings import Settings
from hivecall.speech.models import shared
from hivecall.speech.stt import pcm16_to_float
from hivecall.speech.tts import RATE as TTS_RATE
from hivecall.speech.tts import clauses, resample
from hivecall.speech.vad import FRAME_BYTES
from hivecall.turns.handle import TurnHandle
from hivecall.turns.request import TurnRequest
from hivecall.voice.local.conversation import LocalConversation
from hivecall.voice.local.track import SpeechTrack

NAME = "local"
GOAL_MS = 800.0
FRAME_S = 0.02

REQUESTS = [
    "What is the status of the build?",
    "Run the tests again, please.",
    "Did anything fail overnight?",
    "Open a pull request for the fix.",
    "How many files changed in the last commit?",
    "Summarize what you did this morning.",
    "Is the deploy finished?",
    "Check the logs for errors from the database.",
    "Stop.",
    "What time does the meeting start tomorrow?",
]


def spoken(text: str) -> bytes:
    pcm = shared().synthesizer().pcm(text)
    return resample(np.frombuffer(pcm, dtype=np.int16), TTS_RATE, 16000)


def speech_end(pcm: bytes) -> int:
    """Index of the frame after the last frame louder than -40 dBFS."""
    frames = np.frombuffer(pcm[: len(pcm) // FRAME_BYTES * FRAME_BYTES], dtype=np.int16)
    rms = np.sqrt(np.mean(frames.reshape(-1, FRAME_BYTES // 2).astype(np.float64) ** 2, axis=1))
    loud = np.nonzero(rms > 32768 * 0.01)[0]
    return int(loud[-1]) + 1 if len(loud) else 0


class Drain:
    """Pulls the track every 20 ms, as aiortc's RTP sender does, and notes the first audio."""

    def __init__(self, track: SpeechTrack) -> None:
        self.track = track
        self.first_audio: list[float] = []
        track.on_first_audio = self.first_audio.append
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        start = time.monotonic()
        n = 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_S - time.monotonic()))
            self.track.next_frame()

    def stop(self) -> None:
        self._task.cancel()


async def feed_realtime(conversation: LocalConversation, pcm: bytes) -> float:
    """Feed `pcm` frame by frame in real time; returns when its end was fed (monotonic)."""
    start = time.monotonic()
    for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
        await asyncio.sleep(max(0.0, start + (i // FRAME_BYTES) * FRAME_S - time.monotonic()))
        conversation.feed(pcm[i : i + FRAME_BYTES])
    return time.monotonic()


async def run(options: Options) -> Result:
    count = 6 if options.quick else 20
    models = shared()
    await asyncio.to_thread(models.warm)
    utterances = [spoken(REQUESTS[i % len(REQUESTS)]) for i in range(count)]
    with tempfile.TemporaryDirectory(prefix="hivecall-bench-") as home:
        settings = Settings(home=Path(home), owner_token="b" * 40)
        hub = await Hub.open(settings, environ={})
        try:
            agent = await hub.agents.create(AgentCreate(name="echo", runtime="echo"))
            latencies, answers = await _converse(hub, agent.id, utterances, settings)
        finally:
            await hub.aclose()

    stt_rtf, tts_rtf = _rtfs(utterances, answers)
    ms = sorted(x * 1000 for x in latencies)
    median = statistics.median(ms)
    rows = [
        ["end of speech → first audio, ms", median, ms[int(0.9 * (len(ms) - 1))], ms[0], ms[-1]],
        ["Whisper tiny.en real-time factor", *_summary(stt_rtf)],
        ["Piper (joe, medium) real-time factor", *_summary(tts_rtf)],
    ]
    lines = [
        f"{machine()}; {count} utterances; local_silence_ms={settings.local_silence_ms}; "
        "echo runtime; SQLite",
        "",
        *table(["measure", "median", "p90", "min", "max"], rows),
        "",
        f"Goal: median ≤ {GOAL_MS:.0f} ms — {'met' if median <= GOAL_MS else 'MISSED'}.",
    ]
    return Result("local: end of speech to first audio byte", lines, median <= GOAL_MS)


def _summary(values: list[float]) -> list[float]:
    ordered = sorted(values)
    return [
        statistics.median(ordered),
        ordered[int(0.9 * (len(ordered) - 1))],
        ordered[0],
        ordered[-1],
    ]


async def _converse(
    hub: Hub, agent_id: str, utterances: list[bytes], settings: Settings
) -> tuple[list[float], list[str]]:
    events: list[dict[str, object]] = []
    answers: list[str] = []
    speaker = SpeechTrack()

    async def start_turn(text: str) -> TurnHandle:
        return await hub.bridge.start(
            TurnRequest(agent=agent_id, message=text, source="local_call", session_id="bench")
        )

    async def record(lines: list[CallLineIn]) -> None:
        answers.extend(ln.text for ln in lines if ln.kind == "agent")

    conversation = LocalConversation(
        models=shared(),
        speaker=speaker,
        start_turn=start_turn,
        record=record,
        emit=events.append,
        agent_name="echo",
        tuning=Tuning(silence_ms=settings.local_silence_ms),
    )
    drain = Drain(speaker)
    latencies: list[float] = []
    silence = bytes(FRAME_BYTES * 10)
    try:
        for pcm in utterances:
            end = speech_end(pcm)
            before = len(drain.first_audio)
            await feed_realtime(conversation, pcm[: end * FRAME_BYTES])
            ended_at = time.monotonic()
            rest = pcm[end * FRAME_BYTES :]
            deadline = ended_at + 10
            sent = 0
            while len(drain.first_audio) == before:  # silence until the answer starts
                if time.monotonic() > deadline:
                    raise BenchError("no answer within 10 s of the end of speech")
                chunk = rest[sent : sent + len(silence)] if sent < len(rest) else silence
                sent += len(chunk)
                await feed_realtime(conversation, chunk.ljust(len(silence), b"\0"))
            latencies.append(drain.first_audio[before] - ended_at)
            while speaker.playing or conversation._speaking is not None:  # let it play out
                await feed_realtime(conversation, silence)
            await feed_realtime(conversation, silence * 2)
    finally:
        drain.stop()
        await conversation.aclose()
    if conversation.stats.utterances != len(utterances):
        raise BenchError(f"{len(utterances)} utterances fed, {conversation.stats.utterances} heard")
    return latencies, answers


def _rtfs(utterances: list[bytes], answers: list[str]) -> tuple[list[float], list[float]]:
    stt = shared().transcriber()
    tts = shared().synthesizer()
    stt_rtf = []
    for pcm in utterances:
        t0 = time.perf_counter()
        stt.transcribe(pcm16_to_float(pcm))
        stt_rtf.append((time.perf_counter() - t0) / (len(pcm) / 2 / 16000))
    tts_rtf = []
    for answer in answers:
        for clause in clauses(answer):
            t0 = time.perf_counter()
            audio = tts.pcm(clause)
            tts_rtf.append((time.perf_counter() - t0) / (len(audio) / 2 / TTS_RATE))
    return stt_rtf, tts_rtf
