"""One Realtime conversation: client events in, server events out, the script in between.

Transport-agnostic: a WebRTC call feeds it the `oai-events` data channel, a websocket its text
frames. Everything runs on the stand-in's event loop; tests read the records from their own
thread (lists and dicts only grow) and wait with `wait_for`.

Over a websocket the session can also hear and speak (voice.py; both off by default):
- `hears`: the appended `input_audio_buffer` audio goes through VAD and Whisper. With
  `audio.input.turn_detection` set (server_vad or semantic_vad, told apart by nothing here) an
  utterance gives speech_started, then speech_stopped, committed, the user item and its
  transcription (Whisper's words; `heard` records them), and, for an utterance with words, a
  response when `create_response` is on (the API's default; the script's chooser or its next
  turn that waits for a response.create picks it); speech starting during a response cancels
  it when `interrupt_response` is on (also the default). Endpointing is the hub's (500 ms of
  silence ends an utterance), whatever the session's VAD settings say. With turn_detection null
  the client's `input_audio_buffer.commit` makes the item and its transcription.
- `speaks`: an audio message's `response.output_audio.delta` events carry Piper's speech of its
  transcript in 100 ms chunks, interleaved with the transcript deltas, sent faster than real
  time; without it each word brings 20 ms of silence.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

from tests.standins.realtime import voice as voice_io
from tests.standins.realtime.media import AudioSink, VoiceTrack
from tests.standins.realtime.protocol import CLIENT_EVENTS, error_event, merge, new_id
from tests.standins.realtime.script import Script, Speech, ToolCall, Turn

Event = dict[str, Any]
# 20 ms of 24 kHz pcm16 silence: the audio of one websocket `response.output_audio.delta`.
SILENCE = base64.b64encode(bytes(960)).decode()


class _Cancelled(Exception):
    """The client cancelled the response."""


Send = Callable[[str], Awaitable[None]]


def words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text) or [text]


def sentences(text: str) -> list[str]:
    """`text` cut after each sentence's end, whitespace kept: the parts join back to `text`."""
    return re.findall(r"[^.!?]*[.!?]+\s*|[^.!?]+$", text) or [text]


def chunks(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def interleave(pieces: list[str], audio: list[bytes]) -> list[tuple[str, list[bytes]]]:
    """Steps of a spoken message: (transcript delta, audio chunks sent with it). With audio,
    one step per chunk, each word arriving with the chunk where its share of the time starts."""
    if not audio:
        return [(piece, []) for piece in pieces]
    steps: list[tuple[str, list[bytes]]] = []
    given = 0
    for index, chunk in enumerate(audio):
        due = -(-len(pieces) * (index + 1) // len(audio))  # ceil: the last step has them all
        steps.append(("".join(pieces[given:due]), [chunk]))
        given = max(given, due)
    return steps


# The content a client may give a message item, by role (GA: input_* in, output_* out).
CONTENT_TYPES = {
    "system": ("input_text",),
    "user": ("input_text", "input_audio", "input_image"),
    "assistant": ("output_text", "output_audio"),
}


def message_problem(item: dict[str, Any]) -> tuple[str, str, str] | None:
    """Why the service would refuse a client's message item: (code, param, message), or None."""
    role = item.get("role")
    if role not in CONTENT_TYPES:
        supported = "'user', 'assistant', and 'system'"
        message = f"Invalid value: '{role}'. Supported values are: {supported}."
        return "invalid_value", "item.role", message
    content = item.get("content")
    if not isinstance(content, list) or not content:
        return "missing_required_parameter", "item.content", missing("item.content")
    allowed = CONTENT_TYPES[role]
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            supported = ", ".join(f"'{t}'" for t in allowed)
            message = f"Invalid value: '{kind}'. Supported values for {role} are: {supported}."
            return "invalid_value", f"item.content[{index}].type", message
        if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            param = f"item.content[{index}].text"
            return "missing_required_parameter", param, missing(param)
    return None


def missing(param: str) -> str:
    return f"Missing required parameter: '{param}'."


class RealtimeSession:
    def __init__(
        self,
        *,
        session: dict[str, Any],
        script: Script,
        send: Send,
        webrtc: bool,
        voice: VoiceTrack | None = None,
        call_id: str | None = None,
        hears: bool = False,
        speaks: bool = False,
    ) -> None:
        self.id = call_id or new_id("rtc")
        self.session = session  # the current session object (as session.updated shows it)
        self.script = script
        self.webrtc = webrtc
        self.voice = voice
        self.audio = AudioSink()  # the caller's microphone (WebRTC)
        self.input_audio_bytes = 0  # audio appended over a websocket (input_audio_buffer.append)
        self.connection_state = "new"
        self.received: list[Event] = []  # client events, in order (malformed ones as {"raw"})
        self.sent: list[Event] = []  # server events, in order
        self.session_updates: list[dict[str, Any]] = []  # the `session` of each session.update
        self.items: list[dict[str, Any]] = []  # items the client created (with their ids)
        self.function_outputs: dict[str, str] = {}  # call_id -> output
        self.tool_calls: list[dict[str, Any]] = []  # function_call items the model made
        self.response_requests: list[dict[str, Any]] = []  # the `response` of response.create
        self.responses: list[dict[str, Any]] = []  # each finished response (as response.done)
        self.errors: list[dict[str, Any]] = []  # the `error` of each error event sent
        self.closed = False
        # Voice (websocket form): see the module docstring.
        self.hears = hears and not webrtc
        self.speaks = speaks and not webrtc
        self.heard: list[str] = []  # Whisper's transcript of each utterance heard (non-empty)
        # (audio_start_ms, audio_end_ms) of each of `heard`; (0, 0) for a manual commit's
        self.heard_spans: list[tuple[int, int]] = []
        self.user_said: list[str] = []  # every user utterance: heard, scripted or typed
        self.spoken_audio_bytes = 0  # real speech sent as response.output_audio.delta
        self._ear: voice_io.Ear | None = None
        self._speech_item: str | None = None  # the user item of the utterance in progress
        self._speech_start_ms = 0  # its audio_start_ms
        self._hearing = asyncio.Lock()  # transcriptions finish in the order they were heard
        self._taken_users = 0  # user_said entries a chooser has answered (take_user_text)
        self._taken_outputs = 0  # function outputs a chooser has answered (take_output)
        self._send = send
        self._next = 0  # the next turn of the script
        self._active: asyncio.Task[None] | None = None
        self._active_id: str | None = None  # the response in progress
        self._cancel: str | None = None  # why the active response is to stop
        self._last_item: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what tests read ----------------------------------------------------------------------

    @property
    def received_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.received]

    @property
    def sent_types(self) -> list[str]:
        return [str(e.get("type")) for e in self.sent]

    @property
    def last_output(self) -> str | None:
        """The output of the last function_call_output item the client created."""
        outputs = [i["output"] for i in self.items if i.get("type") == "function_call_output"]
        return str(outputs[-1]) if outputs else None

    @property
    def messages(self) -> list[tuple[str, str]]:
        """(role, text) of each message item the client created, in order."""
        return [
            (str(i["role"]), "".join(str(part.get("text", "")) for part in i["content"]))
            for i in self.items
            if i.get("type") == "message"
        ]

    @property
    def transcripts(self) -> list[str]:
        """What the model said, one entry per finished message (audio transcript or text)."""
        return [
            str(e.get("transcript", e.get("text")))
            for e in self.sent
            if e["type"] in ("response.output_audio_transcript.done", "response.output_text.done")
        ]

    def take_user_text(self) -> str | None:
        """What the user said since the last call (joined), or None; for Script.choose."""
        new = [t for t in self.user_said[self._taken_users :] if t.strip()]
        self._taken_users = len(self.user_said)
        return " ".join(new) if new else None

    def take_output(self) -> str | None:
        """The last function output since the last call, or None; for Script.choose."""
        outputs = [i["output"] for i in self.items if i.get("type") == "function_call_output"]
        new = outputs[self._taken_outputs :]
        self._taken_outputs = len(outputs)
        return str(new[-1]) if new else None

    @property
    def busy(self) -> bool:
        """A response is in progress (from response.created to response.done)."""
        return self._active_id is not None

    async def wait_for(
        self, predicate: Callable[[RealtimeSession], object], timeout: float = 10, what: str = ""
    ) -> None:
        """Poll (from any loop) until `predicate(session)` is true."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what or predicate}; "
                    f"received {self.received_types}, sent {self.sent_types}"
                )
            await asyncio.sleep(0.01)

    # -- life cycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """The transport is up: session.created, and an automatic first turn if scripted."""
        await self.emit({"type": "session.created", "session": self.session})
        self._schedule_auto()

    async def close(self) -> None:
        self.closed = True
        tasks = [t for t in (*self._tasks, self._active) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.audio.stop()

    async def emit(self, event: Event) -> None:
        text = json.dumps({"type": event["type"], "event_id": new_id("event"), **event})
        sent = json.loads(text)  # a snapshot: the dicts it was made of change later
        self.sent.append(sent)
        if sent["type"] == "error":
            self.errors.append(sent["error"])
        if not self.closed:
            with contextlib.suppress(Exception):
                await self._send(text)

    def start_turn(self, turn: Turn) -> None:
        """Run a turn now (after the active response, if any); for tests that drive the call."""
        self._spawn(self._run_turn_later(turn, 0.0))

    # -- client events --------------------------------------------------------------------------

    async def receive(self, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError as e:
            self.received.append({"raw": text})
            await self.emit(error_event(f"Invalid JSON: {e}", code="invalid_json"))
            return
        if not isinstance(event, dict):
            self.received.append({"raw": text})
            await self.emit(error_event("Expected an object.", code="invalid_type"))
            return
        self.received.append(event)
        kind = event.get("type")
        client_id = event.get("event_id")
        if not isinstance(kind, str):
            await self.emit(
                error_event(
                    "Missing required parameter: 'type'.",
                    code="missing_required_parameter",
                    param="type",
                    event_id=client_id,
                )
            )
            return
        if kind not in CLIENT_EVENTS:
            supported = ", ".join(f"'{t}'" for t in sorted(CLIENT_EVENTS))
            await self.emit(
                error_event(
                    f"Invalid value: '{kind}'. Supported values are: {supported}.",
                    code="invalid_value",
                    param="type",
                    event_id=client_id,
                )
            )
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            await handler(self, event)

    async def _missing(self, param: str, event: Event) -> None:
        await self.emit(
            error_event(
                f"Missing required parameter: '{param}'.",
                code="missing_required_parameter",
                param=param,
                event_id=event.get("event_id"),
            )
        )

    async def _session_update(self, event: Event) -> None:
        update = event.get("session")
        if not isinstance(update, dict):
            return await self._missing("session", event)
        if "type" not in update:
            return await self._missing("session.type", event)
        self.session_updates.append(update)
        self.session = merge(self.session, update)
        await self.emit({"type": "session.updated", "session": self.session})

    async def _item_create(self, event: Event) -> None:
        item = event.get("item")
        if not isinstance(item, dict):
            return await self._missing("item", event)
        kind = item.get("type")
        if kind not in ("message", "function_call", "function_call_output"):
            return await self.emit(
                error_event(
                    f"Invalid value: '{kind}'. Supported values are: 'message', "
                    "'function_call', and 'function_call_output'.",
                    code="invalid_value",
                    param="item.type",
                    event_id=event.get("event_id"),
                )
            )
        if kind == "function_call_output":
            for key in ("call_id", "output"):
                if not isinstance(item.get(key), str):
                    return await self._missing(f"item.{key}", event)
        if kind == "message" and (problem := message_problem(item)) is not None:
            code, param, message = problem
            return await self.emit(
                error_event(message, code=code, param=param, event_id=event.get("event_id"))
            )
        item = {"id": new_id("item"), "object": "realtime.item", "status": "completed", **item}
        self.items.append(item)
        if kind == "function_call_output":
            self.function_outputs[item["call_id"]] = item["output"]
        if kind == "message" and item["role"] == "user":
            said = " ".join(
                str(part.get("text") or part.get("transcript") or "") for part in item["content"]
            )
            if said.strip():
                self.user_said.append(said.strip())
        previous = event.get("previous_item_id", self._last_item)
        self._last_item = item["id"]
        await self.emit(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": item}
        )
        await self.emit(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
        )

    async def _response_create(self, event: Event) -> None:
        request = event.get("response") if isinstance(event.get("response"), dict) else {}
        assert isinstance(request, dict)
        self.response_requests.append(request)
        if self.busy:
            await self.emit(
                error_event(
                    f"Conversation already has an active response in progress: "
                    f"{self._active_id}. Wait until the response is finished before creating "
                    "a new one.",
                    code="conversation_already_has_active_response",
                    event_id=event.get("event_id"),
                )
            )
            return
        await self._begin(self._choose(request), request)

    def _choose(self, request: dict[str, Any]) -> Turn:
        """The turn that answers a response.create: the script's chooser, else the next scripted
        turn that waits for one, else the fallback."""
        if (
            self.script.choose is not None
            and (turn := self.script.choose(self, request)) is not None
        ):
            return turn
        turns = self.script.turns
        if self._next < len(turns) and not turns[self._next].auto:
            self._next += 1
            return turns[self._next - 1]
        return self.script.fallback

    async def _response_cancel(self, event: Event) -> None:
        if not self.busy:
            await self.emit(
                error_event(
                    "Cancellation failed: no active response found",
                    code="response_cancel_not_active",
                    event_id=event.get("event_id"),
                )
            )
            return
        self._cancel = "client_cancelled"

    async def _output_clear(self, event: Event) -> None:
        if self.webrtc and self._active_id:
            await self.emit({"type": "output_audio_buffer.cleared", "response_id": self._active_id})

    async def _item_delete(self, event: Event) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str):
            return await self._missing("item_id", event)
        await self.emit({"type": "conversation.item.deleted", "item_id": item_id})

    async def _item_truncate(self, event: Event) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str):
            return await self._missing("item_id", event)
        await self.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": event.get("content_index", 0),
                "audio_end_ms": event.get("audio_end_ms", 0),
            }
        )

    async def _audio_append(self, event: Event) -> None:
        try:
            audio = base64.b64decode(event.get("audio") or "")
        except (ValueError, TypeError):
            return
        self.input_audio_bytes += len(audio)
        if self.hears:
            await self._hear(audio)

    async def _audio_clear(self, event: Event) -> None:
        if self._ear is not None:
            self._ear.clear()
            self._speech_item = None
        await self.emit({"type": "input_audio_buffer.cleared"})

    async def _audio_commit(self, event: Event) -> None:
        item_id = self._speech_item or new_id("item")
        if not self.hears or self._ear is None:
            previous, self._last_item = self._last_item, item_id
            await self.emit(
                {
                    "type": "input_audio_buffer.committed",
                    "previous_item_id": previous,
                    "item_id": item_id,
                }
            )
            return
        # The client commits what is buffered (turn_detection null, or before VAD would).
        audio = self._ear.take()
        self._ear.clear()
        self._speech_item = None
        await self._user_item(item_id)
        self._spawn(self._transcribe(item_id, audio, respond=False))

    # -- hearing (websocket, `hears`) -----------------------------------------------------------

    def _turn_detection(self) -> dict[str, Any] | None:
        detection = self.session.get("audio", {}).get("input", {}).get("turn_detection")
        return detection if isinstance(detection, dict) else None

    async def _hear(self, audio: bytes) -> None:
        if self._ear is None:
            self._ear = voice_io.Ear()
        ear = self._ear
        events = ear.feed(audio)
        detection = self._turn_detection()
        if detection is not None and not ear.endpointer.in_speech and not events:
            ear.take()  # VAD commits only speech: a call's silence is not kept
        for event in events:
            if detection is None:  # manual turns: the client commits
                continue
            at_ms = ear.ms_at(event)
            if event.kind == "start":
                self._speech_item = new_id("item")
                if detection.get("interrupt_response", True) and self.busy:
                    self._cancel = "turn_detected"
                # Like the API's, it includes the audio kept from before the speech was detected.
                self._speech_start_ms = max(0, at_ms - ear.preroll_ms)
                await self._speech_started(self._speech_item, self._speech_start_ms)
            elif event.kind in ("end", "drop"):  # a drop (a click, a cough) is heard too
                item_id = self._speech_item or new_id("item")
                self._speech_item = None
                ear.take()  # committed: it leaves the buffer
                await self._speech_stopped(item_id, at_ms)
                await self._user_item(item_id)
                respond = bool(detection.get("create_response", True))
                span = (self._speech_start_ms, at_ms)
                # Whisper makes words up for a burst too short to be speech: it hears none.
                audio = event.audio if event.kind == "end" else b""
                self._spawn(self._transcribe(item_id, audio, respond=respond, span=span))

    async def _transcribe(
        self, item_id: str, audio: bytes, *, respond: bool, span: tuple[int, int] | None = None
    ) -> None:
        async with self._hearing:
            text = await voice_io.transcribe(audio) if audio else ""
            if text:
                self.heard.append(text)
                self.heard_spans.append(span or (0, 0))
            await self._transcribed(item_id, text)
        if respond and text and not self.closed:
            while self.busy:  # as with server VAD, after the response in progress
                await asyncio.sleep(0.01)
            await self._begin(self._choose({}), {})

    _handlers: ClassVar[dict[str, Callable[[RealtimeSession, Event], Awaitable[None]]]] = {
        "session.update": _session_update,
        "conversation.item.create": _item_create,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
        "output_audio_buffer.clear": _output_clear,
        "conversation.item.delete": _item_delete,
        "conversation.item.truncate": _item_truncate,
        "input_audio_buffer.append": _audio_append,
        "input_audio_buffer.clear": _audio_clear,
        "input_audio_buffer.commit": _audio_commit,
    }

    # -- the model ------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_auto(self) -> None:
        turns = self.script.turns
        if self._next < len(turns) and turns[self._next].auto:
            turn = turns[self._next]
            self._next += 1
            self._spawn(self._run_turn_later(turn, self.script.user_delay))

    async def _run_turn_later(self, turn: Turn, delay: float) -> None:
        await asyncio.sleep(delay)
        while self.busy:
            await asyncio.sleep(0.01)
        if turn.user is not None:
            await self._user_speaks(turn.user)
        while self.busy:  # the client may have started one meanwhile
            await asyncio.sleep(0.01)
        if turn.outputs:
            await self._begin(turn, {})

    async def _user_speaks(
        self, transcript: str, *, start_ms: int = 1000, end_ms: int = 2500
    ) -> None:
        """A scripted utterance, as server VAD reports one it heard."""
        item_id = new_id("item")
        await self._speech_started(item_id, start_ms)
        await self._speech_stopped(item_id, end_ms)
        await self._user_item(item_id)
        await self._transcribed(item_id, transcript)

    async def _speech_started(self, item_id: str, start_ms: int) -> None:
        await self.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": start_ms,
                "item_id": item_id,
            }
        )

    async def _speech_stopped(self, item_id: str, end_ms: int) -> None:
        await self.emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": end_ms,
                "item_id": item_id,
            }
        )

    async def _user_item(self, item_id: str) -> None:
        """The buffer committed into a user audio item (its transcript comes later)."""
        previous, self._last_item = self._last_item, item_id
        await self.emit(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self.emit(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": item}
        )
        await self.emit(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
        )

    async def _transcribed(self, item_id: str, transcript: str) -> None:
        if transcript.strip():
            self.user_said.append(transcript)
        words_n = len(transcript.split())
        await self.emit(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {
                    "type": "tokens",
                    "input_tokens": 20,
                    "output_tokens": words_n,
                    "total_tokens": 20 + words_n,
                },
            }
        )

    async def _begin(self, turn: Turn, request: dict[str, Any]) -> None:
        response_id = new_id("resp")
        self._active_id = response_id
        self._cancel = None
        voice = self.session.get("audio", {}).get("output", {}).get("voice", "alloy")
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": response_id,
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": "conv_" + self.id.split("_", 1)[-1],
            "output_modalities": request.get(
                "output_modalities", self.session.get("output_modalities", ["audio"])
            ),
            "max_output_tokens": "inf",
            "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": voice}},
            "usage": None,
            "metadata": request.get("metadata"),
        }
        await self.emit({"type": "response.created", "response": response})
        self._active = asyncio.ensure_future(self._respond(turn, response))

    async def _gap(self) -> None:
        """The pause between two deltas; where a response.cancel takes effect."""
        await asyncio.sleep(self.script.delta_gap)
        if self._cancel is not None:
            raise _Cancelled

    async def _respond(self, turn: Turn, response: dict[str, Any]) -> None:
        response_id = response["id"]
        text_only = "audio" not in response["output_modalities"]
        speaks = not text_only and any(isinstance(o, Speech) for o in turn.outputs)
        if speaks and self.webrtc:
            await self.emit({"type": "output_audio_buffer.started", "response_id": response_id})
        try:
            for index, output in enumerate(turn.outputs):
                if isinstance(output, Speech):
                    item = await self._speak(output, response_id, index, text_only=text_only)
                else:
                    item = await self._call_tool(output, response_id, index)
                response["output"].append(item)
            response["status"] = "completed"
        except (_Cancelled, asyncio.CancelledError):
            response["status"] = "cancelled"
            reason = self._cancel or "client_cancelled"
            response["status_details"] = {"type": "cancelled", "reason": reason}
        finally:
            if self.voice is not None:
                self.voice.speaking = False
        response["usage"] = {
            "total_tokens": 100,
            "input_tokens": 80,
            "output_tokens": 20,
            "input_token_details": {"text_tokens": 60, "audio_tokens": 20, "cached_tokens": 0},
            "output_token_details": {"text_tokens": 5, "audio_tokens": 15},
        }
        self.responses.append(response)
        self._active_id = None
        await self.emit({"type": "response.done", "response": response})
        if speaks and self.webrtc:
            await self.emit({"type": "output_audio_buffer.stopped", "response_id": response_id})
        if response["status"] == "completed":
            self._schedule_auto()

    def _add_item(self, item: dict[str, Any]) -> str | None:
        previous, self._last_item = self._last_item, item["id"]
        return previous

    async def _step(
        self, at: dict[str, Any], piece: str, sound: list[bytes], *, text_only: bool
    ) -> None:
        """One step of a spoken message: its audio chunks, then its transcript delta."""
        if text_only:
            await self.emit({"type": "response.output_text.delta", **at, "delta": piece})
            return
        for chunk in sound:
            self.spoken_audio_bytes += len(chunk)
            delta = base64.b64encode(chunk).decode()
            await self.emit({"type": "response.output_audio.delta", **at, "delta": delta})
        if not self.webrtc and not self.speaks:  # the audio comes as events here too
            await self.emit({"type": "response.output_audio.delta", **at, "delta": SILENCE})
        if piece:
            await self.emit(
                {"type": "response.output_audio_transcript.delta", **at, "delta": piece}
            )

    async def _voiced(self, text: str, *, speaks: bool) -> AsyncIterator[tuple[str, bytes]]:
        """(sentence, its Piper audio) in order, the next one made while this one is sent: a
        model streams its speech, so the first audio leaves after one sentence's synthesis,
        not the whole answer's. Without speech, the whole text with no audio."""
        if not speaks:
            yield text, b""
            return
        parts = sentences(text)
        pending = asyncio.ensure_future(voice_io.synthesize(parts[0]))
        try:
            for index, sentence in enumerate(parts):
                audio = await pending
                if index + 1 < len(parts):
                    pending = asyncio.ensure_future(voice_io.synthesize(parts[index + 1]))
                yield sentence, audio
        finally:
            pending.cancel()

    async def _speak(
        self, speech: Speech, response_id: str, index: int, *, text_only: bool
    ) -> dict[str, Any]:
        """An assistant message: audio with its transcript, or text (output_modalities text)."""
        text = speech.render(self)
        item_id = new_id("item")
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        where = {"response_id": response_id, "item_id": item_id, "output_index": index}
        at = {**where, "content_index": 0}
        previous = self._add_item(item)
        await self.emit(
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": index,
                "item": dict(item),
            }
        )
        await self.emit(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": dict(item)}
        )
        kind, key = ("text", "text") if text_only else ("audio", "transcript")
        await self.emit(
            {"type": "response.content_part.added", **at, "part": {"type": kind, key: ""}}
        )
        if self.voice is not None:
            self.voice.speaking = True
        voiced = self._voiced(text, speaks=self.speaks and not text_only)
        async with contextlib.aclosing(voiced):  # a cancel mid-answer drops the next sentence
            async for sentence, audio in voiced:
                for piece, sound in interleave(words(sentence), voice_io.audio_chunks(audio)):
                    await self._gap()
                    await self._step(at, piece, sound, text_only=text_only)
        if self.voice is not None:
            self.voice.speaking = False
        if text_only:
            await self.emit({"type": "response.output_text.done", **at, "text": text})
        else:
            await self.emit({"type": "response.output_audio.done", **at})
            await self.emit(
                {"type": "response.output_audio_transcript.done", **at, "transcript": text}
            )
        await self.emit(
            {"type": "response.content_part.done", **at, "part": {"type": kind, key: text}}
        )
        item["status"] = "completed"
        item["content"] = [{"type": f"output_{kind}", key: text}]
        await self.emit(
            {
                "type": "response.output_item.done",
                "response_id": response_id,
                "output_index": index,
                "item": item,
            }
        )
        await self.emit(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
        )
        return item

    async def _call_tool(self, call: ToolCall, response_id: str, index: int) -> dict[str, Any]:
        arguments = (
            call.arguments if call.arguments is not None else json.dumps({"message": call.message})
        )
        item_id = new_id("item")
        call_id = call.call_id or new_id("call")
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        where = {"response_id": response_id, "item_id": item_id, "output_index": index}
        previous = self._add_item(item)
        await self.emit(
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": index,
                "item": dict(item),
            }
        )
        await self.emit(
            {"type": "conversation.item.added", "previous_item_id": previous, "item": dict(item)}
        )
        for piece in chunks(arguments):
            await self._gap()
            await self.emit(
                {
                    "type": "response.function_call_arguments.delta",
                    **where,
                    "call_id": call_id,
                    "delta": piece,
                }
            )
        await self.emit(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "call_id": call_id,
                "name": call.name,
                "arguments": arguments,
            }
        )
        item["status"] = "completed"
        item["arguments"] = arguments
        self.tool_calls.append(item)
        await self.emit(
            {
                "type": "response.output_item.done",
                "response_id": response_id,
                "output_index": index,
                "item": item,
            }
        )
        await self.emit(
            {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
        )
        return item
