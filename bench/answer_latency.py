"""A cloud call's answer latency through the real livekit-server: from the moment a person stops
speaking to the first audible sample of the agent's answer they receive.

The whole stack of tests/livekit_real/stack.py, on a real livekit-server (scripts/
livekit-server.sh, run by tests/livekit_real/server.py): a hub (a thread of this process) with
cloud calls on, the real `hivecall worker` CLI (a subprocess, `livekit-agents`), and the OpenAI
Realtime stand-in as the worker's voice model, hearing with Whisper tiny.en, relaying what it
heard to `ask_computer_agent` and saying the tool's output with Piper. The agent is `oscar`, a
command agent whose runtime answers at once, so the figure is the pipeline's own: the person's
audio through LiveKit to the worker, the model's end-of-speech wait and transcription, the tool
call to the hub, the runtime, the spoken answer back through LiveKit.

Each round is one call: started through `POST /api/calls`, a `livekit.rtc` participant joins
(libwebrtc, as in Chromium), waits for the worker's greeting to end, asks, and times the answer;
the answer must be heard (Whisper) as the runtime's words, or the run fails. Then the host ends
the call and the next round waits until the worker's job is gone. One untimed call comes first
(the first hearing loads the speech models). It needs no network namespace, but inside
scripts/with-netns.sh (as root) it adds the interface LiveKit's clients need, as the tests do.
"""

from __future__ import annotations

import contextlib
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path

from harness import BenchError, Options, Result, Samples, machine, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.livekit_real import server as livekit_server
from tests.livekit_real.stack import (
    ANSWERS,
    CloudStack,
    Person,
    answer_latency,
    running_stack,
    wait_for,
)
from tests.local.speech import overlap
from tests.standins.realtime import relay_script

NAME = "answer"
GOAL_P50_S = 1.0
AGENT = "oscar"
QUESTION = "Oscar, is the build green?"
GREETING = "Hello, this is Oscar."


async def one_call(stack: CloudStack) -> tuple[float, float]:
    """One call: (seconds from the call's start to the agent's greeting, answer latency)."""
    started_at = time.monotonic()
    started = await stack.start_call(AGENT)
    person = await Person.join(started.livekit)
    try:
        recording = await person.track_of(started.agent_identity, timeout=60)
        greeted = await recording.wait_audible(started_at, timeout=60)
        await recording.wait_quiet(1.0)
        latency, spoken = await answer_latency(person, started.agent_identity, QUESTION)
        await recording.wait_quiet(1.0)
        heard = await recording.transcript(spoken.ended)
        if overlap(heard, ANSWERS[AGENT]) < 0.6:
            raise BenchError(f"the answer was heard as {heard!r}, not {ANSWERS[AGENT]!r}")
    finally:
        await person.leave()
        await stack.end_call(started.call_id)
    await wait_for("the worker's job to end", lambda: stack.active_jobs() == 0, timeout=30)
    return greeted - started_at, latency


async def run(options: Options) -> Result:
    calls = 3 if options.quick else 10
    before = machine()
    key, secret = f"APIbench{secrets.token_hex(4)}", secrets.token_urlsafe(32)
    greetings, answers = Samples(), Samples()
    try:
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(livekit_server.running(api_key=key, api_secret=secret))
            stack.enter_context(livekit_server.client_interface())
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hivecall-answer-")))
            cloud = stack.enter_context(running_stack(server, tmp))
            cloud.realtime.script = relay_script(opening=GREETING)
            cloud.realtime.hears = cloud.realtime.speaks = True
            version = livekit_server.version(server.binary)
            await one_call(cloud)  # warm-up: the first hearing loads Whisper (about a second)
            for _ in range(calls):
                greeted, latency = await one_call(cloud)
                greetings.latencies.append(greeted)
                answers.latencies.append(latency)
    except (livekit_server.Unavailable, livekit_server.StartFailed) as e:
        raise BenchError(f"no real livekit-server: {e}") from e
    except AssertionError as e:  # wait_for's timeouts, the stack's refused requests
        raise BenchError(str(e)) from e
    p50 = answers.pct(50)
    met = p50 <= GOAL_P50_S * 1000
    rows = [
        ["call start → the worker's greeting heard", calls, *_figures(greetings)],
        ["end of speech → first audible answer sample", calls, *_figures(answers)],
    ]
    return Result(
        title=f"{NAME}: a cloud call's answer latency through livekit-server {version}",
        lines=[
            f"{'quick' if options.quick else 'full'} run; Python {platform.python_version()}; "
            f"{calls} calls, one after another; agent {AGENT!r} answers at once; the person is a "
            "livekit.rtc participant; voice model: the Realtime stand-in (Whisper tiny.en "
            "hearing after 500 ms of silence, Piper speaking)",
            "",
            *table(["", "calls", "p50 ms", "min ms", "max ms"], rows),
            "",
            f"goal: answer p50 <= {GOAL_P50_S * 1000:.0f} ms — {'met' if met else 'MISSED'}",
            f"machine before: {before}; after: {machine()}",
        ],
        goal_met=met,
    )


def _figures(samples: Samples) -> list[float]:
    return [samples.pct(50), min(samples.latencies) * 1000, max(samples.latencies) * 1000]
