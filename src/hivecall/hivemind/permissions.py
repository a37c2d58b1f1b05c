"""What a HiveMind client may do: its record as the server holds it, and the checks on it.

A client may inject a bus message only if its type is in `allowed_types`; bus messages whose
type is in `message_blacklist` are never sent to it. `broadcast` needs admin and
`can_broadcast`; `propagate` needs `can_propagate`; `escalate` needs `can_escalate`, and the bus
message a routed one carries must be one the client may inject (dispatch.py). Skill and
intent blacklists travel with each injected message's session (for agents that honour them).
"""

from __future__ import annotations

from dataclasses import dataclass

from hivecall.hivemind_protocol.wire import MsgType

# Upstream's default set (hivemind-plugin-manager's Client), without the audio-only types a
# hub without OVOS has no use for... kept anyway so satellites that send them are not refused.
DEFAULT_ALLOWED_TYPES: tuple[str, ...] = (
    "recognizer_loop:utterance",
    "recognizer_loop:record_begin",
    "recognizer_loop:record_end",
    "recognizer_loop:audio_output_start",
    "recognizer_loop:audio_output_end",
    "recognizer_loop:b64_transcribe",
    "speak:b64_audio",
    "speak:synth",  # a satellite asking for an answer's audio (TTS_AUDIO)
    "ovos.common_play.SEI.get.response",
)


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client as a live connection sees it (password in the clear: never log this)."""

    id: str
    name: str
    key_hash: str
    password: str
    agent_id: str | None
    is_admin: bool
    allowed_types: frozenset[str]
    message_blacklist: frozenset[str]
    skill_blacklist: tuple[str, ...]
    intent_blacklist: tuple[str, ...]
    can_escalate: bool
    can_propagate: bool
    can_broadcast: bool

    def __repr__(self) -> str:  # never the password
        return f"ClientRecord(id={self.id!r}, name={self.name!r})"

    def may_inject(self, bus_type: str) -> bool:
        return bus_type in self.allowed_types

    def may_receive(self, bus_type: str) -> bool:
        return bus_type not in self.message_blacklist

    def may_route(self, msg_type: MsgType) -> bool:
        if msg_type is MsgType.BROADCAST:
            return self.is_admin and self.can_broadcast
        if msg_type is MsgType.PROPAGATE:
            return self.can_propagate
        if msg_type is MsgType.ESCALATE:
            return self.can_escalate
        return True
