"""A local OpenAI Realtime stand-in: real HTTP and real WebRTC (aiortc) on 127.0.0.1.

- `POST /v1/realtime/client_secrets` mints `ek_…` secrets with the configured user key,
  answering as OpenAI's GA API does (the `openai` SDK parses it).
- `POST /v1/realtime/calls` takes a browser's SDP offer (bearer `ek_…`,
  `Content-Type: application/sdp`) and answers it with aiortc: 201, the answer SDP as the body,
  the call in `Location`. The caller's audio is counted, the "model" sends a tone while it speaks.
- The `oai-events` data channel speaks the GA events (session.created/updated,
  conversation.item.added/done, response.* with transcript deltas and function calls, errors),
  following a script (see `script.py`; `default_script()` is a typical call with one
  `ask_computer_agent` tool call).
- `GET /v1/realtime?model=…` is the websocket form (the openai SDK's `realtime.connect()`,
  livekit-plugins-openai): bearer user key or secret, the same events, audio as
  `response.output_audio.delta` events, text with `output_modalities: ["text"]`. By default
  its audio is silence and it hears nothing but scripted turns; with `standin.hears` it runs
  the hub's VAD and Whisper on the appended audio (speech_started/stopped, committed, the
  user item and its transcription, a response when turn_detection.create_response is on),
  and with `standin.speaks` its audio deltas are Piper's speech of the transcript
  (session.py, voice.py). `relay_script()` then makes it a voice front end: what it heard goes
  to `ask_computer_agent`, and the tool's output is what it says.

aiortc answers on 127.0.0.1 only after `allow_loopback_ice()` (media.py), which `start()` calls.
"""

from tests.standins.realtime.script import (
    OPENING,
    TOOL_MESSAGE,
    TOOL_NAME,
    USER_REQUEST,
    Script,
    Speech,
    ToolCall,
    Turn,
    default_script,
    relay_script,
)
from tests.standins.realtime.server import DEFAULT_KEY, RealtimeStandin, Recorded, Secret, serve
from tests.standins.realtime.session import RealtimeSession

__all__ = [
    "DEFAULT_KEY",
    "OPENING",
    "TOOL_MESSAGE",
    "TOOL_NAME",
    "USER_REQUEST",
    "RealtimeSession",
    "RealtimeStandin",
    "Recorded",
    "Script",
    "Secret",
    "Speech",
    "ToolCall",
    "Turn",
    "default_script",
    "relay_script",
    "serve",
]
