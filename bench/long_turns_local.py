"""Long turns on a local call: from the end of the caller's request to the acknowledgement heard.

The hub's local-call pipeline in this process, as in `local_speech`: a real Hub (SQLite in a
temporary home), a LocalConversation with the real webrtcvad, Whisper tiny.en and Piper, tuned
from the hub's settings as a call is (`Tuning.of`), and its SpeechTrack drained every 20 ms as
aiortc's RTP sender drains it. The agent is a command agent that works for 60 s, printing a
progress line every 2 s. For each spoken request (fed in real time, then silence):

- end of speech = when the last frame louder than -40 dBFS was fed;
- acknowledgement = when the track handed out the first frame of what the hub said next, which
  must be the acknowledgement ("worker is working on it.");
- then the caller says "Stop.", and the turn must end `cancelled` (its process group killed)
  before the next request.

The latency includes the silence that ends the utterance (`local_silence_ms`), Whisper, the bridge
turn written to the store, the wait before a running turn is acknowledged (`Tuning.ack_s`: half
a second, or HIVECALL_VOICE_ACK_S if smaller), and the next frame; the acknowledgement's voice
is made ahead, when the call starts.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import BenchError, Options, Result, machine, table
from hivecall.agents.records import AgentCreate
from hivecall.calls.local import Tuning
from hivecall.calls.records import CallLineIn
from hivecall.hub import Hub
from hivecall.settings import Settings
from hivecall.speech.models import shared
from hivecall.speech.vad import FRAME_BYTES
from hivecall.turns.handle import TurnHandle
from hivecall.turns.request import TurnRequest
from hivecall.voice.local.conversation import LocalConversation
from hivecall.voice.local.track import SpeechTrack
from local_speech import REQUESTS, Drain, feed_realtime, speech_end, spoken

NAME = "long_turns_local"
GOAL_MS = 1500.0
AGENT = "worker"
WORKER = (
    "import sys, time\n"
    "for i in range(30):\n"
    "    print(f'step {i + 1} of 30: checking part {i + 1}', flush=True)\n"
    "    time.sleep(2)\n"
    "print('All 30 parts are fine.')\n"
)


async def run(options: Options) -> Result:
    count = 3 if options.quick else 10
    models = shared()
    await asyncio.to_thread(models.warm)
    requests = [spoken(text) for text in REQUESTS if text != "Stop."][:count]
    requests += [requests[i % len(requests)] for i in range(len(requests), count)]
    stop = spoken("Stop.")
    with tempfile.TemporaryDirectory(prefix="hivecall-bench-") as home:
        script = Path(home) / "worker.py"
        script.write_text(WORKER)
        settings = Settings(home=Path(home) / "hub", owner_token="b" * 40)
        hub = await Hub.open(settings, environ={"PATH": str(Path(sys.executable).parent)})
        try:
            agent = await hub.agents.create(
                AgentCreate(
                    name=AGENT,
                    runtime="command",
                    command=[sys.executable, str(script), "{message}"],
                )
            )
            samples = await _converse(hub, agent.id, requests, stop)
        finally:
            await hub.aclose()

    tuning = Tuning.of(settings)
    rows = [
        ["end of speech → acknowledgement audio, ms", *_summary([s[0] for s in samples])],
        ["end of speech → turn started, ms", *_summary([s[1] for s in samples])],
        ["turn started → acknowledgement audio, ms", *_summary([s[0] - s[1] for s in samples])],
    ]
    p90 = _summary([s[0] for s in samples])[1]
    met = p90 <= GOAL_MS
    lines = [
        f"{machine()}; {count} requests; local_silence_ms={tuning.silence_ms}; "
        f"ack after {tuning.ack_s * 1000:.0f} ms; a 60 s command agent, stopped by voice "
        f"after each acknowledgement; SQLite",
        "",
        *table(["measure", "median", "p90", "min", "max"], rows),
        "",
        f"Goal: p90 ≤ {GOAL_MS:.0f} ms — {'met' if met else 'MISSED'}.",
    ]
    return Result(
        "long_turns_local: a local call's request to its spoken acknowledgement", lines, met
    )


def _summary(values: list[float]) -> list[float]:
    ordered = sorted(values)
    return [
        statistics.median(ordered),
        ordered[int(0.9 * (len(ordered) - 1))],
        ordered[0],
        ordered[-1],
    ]


async def _converse(
    hub: Hub, agent_id: str, requests: list[bytes], stop: bytes
) -> list[tuple[float, float]]:
    """(end of speech → acknowledgement, end of speech → turn started) in ms, per request."""
    events: list[tuple[float, dict[str, Any]]] = []
    speaker = SpeechTrack()

    async def start_turn(text: str) -> TurnHandle:
        return await hub.bridge.start(
            TurnRequest(agent=agent_id, message=text, source="local_call", session_id="bench")
        )

    async def record(lines: list[CallLineIn]) -> None:
        return None

    conversation = LocalConversation(
        models=shared(),
        speaker=speaker,
        start_turn=start_turn,
        cancel_turn=hub.bridge.cancel,
        record=record,
        emit=lambda e: events.append((time.monotonic(), e)),
        agent_name=AGENT,
        tuning=Tuning.of(hub.settings),
    )
    drain = Drain(speaker)
    silence = bytes(FRAME_BYTES * 10)

    async def until(check: Any, what: str, seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise BenchError(f"{what} did not happen within {seconds:.0f} s")
            await feed_realtime(conversation, silence)

    def of(kind: str, since: int) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in events[since:] if e["type"] == kind]

    async def one(pcm: bytes) -> tuple[float, float]:
        end = speech_end(pcm)
        before, mark = len(drain.first_audio), len(events)
        await feed_realtime(conversation, pcm[: end * FRAME_BYTES])
        ended_at = time.monotonic()
        await feed_realtime(conversation, pcm[end * FRAME_BYTES :])
        await until(lambda: len(drain.first_audio) > before, "the acknowledgement")
        started = of("hivecall.turn.started", mark)
        said = [e["delta"] for _, e in of("response.output_audio_transcript.delta", mark)]
        if len(started) != 1 or said[:1] != [f"{AGENT} is working on it."]:
            raise BenchError(f"the first thing said was {said[:1]}, not the acknowledgement")
        sample = (drain.first_audio[before] - ended_at) * 1000, (started[0][0] - ended_at) * 1000
        await until(conversation._quiet, "the acknowledgement's end")
        await feed_realtime(conversation, stop)
        await until(lambda: of("hivecall.turn.done", mark), "the cancel")
        [(_, done)] = of("hivecall.turn.done", mark)
        if done["status"] != "cancelled":
            raise BenchError(f"the turn ended {done['status']}, not cancelled")
        await until(conversation._quiet, '"Stopped"')
        await feed_realtime(conversation, silence * 2)
        return sample

    try:
        samples = [await one(pcm) for pcm in requests]
    finally:
        drain.stop()
        await conversation.aclose()
    return samples
