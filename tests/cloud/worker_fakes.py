"""Fakes of the small part of `livekit.rtc` the worker reads from its room (participants,
their kinds, attributes and tracks; room events), for tests without an SFU. They have the same
attribute names as the real objects; `cast` them where a real type is expected."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from livekit import rtc

STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
EGRESS = rtc.ParticipantKind.PARTICIPANT_KIND_EGRESS


@dataclass
class FakePublication:
    kind: rtc.TrackKind.ValueType = rtc.TrackKind.KIND_AUDIO
    subscribed: bool = False

    def set_subscribed(self, subscribed: bool) -> None:
        self.subscribed = subscribed


@dataclass
class FakeParticipant:
    identity: str
    name: str = ""
    kind: rtc.ParticipantKind.ValueType = STANDARD
    attributes: dict[str, str] = field(default_factory=dict)
    joined_at: datetime | None = None
    track_publications: dict[str, FakePublication] = field(default_factory=dict)


def person(identity: str, name: str = "", **kw: Any) -> FakeParticipant:
    return FakeParticipant(identity, name, attributes={"hivecall.kind": "human"}, **kw)


def agent(name: str, joined: int = 0, **kw: Any) -> FakeParticipant:
    return FakeParticipant(
        f"agent-{name}",
        name,
        kind=AGENT,
        attributes={"hivecall.kind": "agent", "hivecall.agent_id": name},
        joined_at=datetime.fromtimestamp(1_800_000_000 + joined, UTC),
        **kw,
    )


class FakeRoom:
    def __init__(self, *participants: FakeParticipant) -> None:
        self.remote_participants = {p.identity: p for p in participants}
        self.handlers: dict[str, list[Callable[..., None]]] = {}
        self.connected = True

    def on(self, event: str, callback: Callable[..., None]) -> None:
        self.handlers.setdefault(event, []).append(callback)

    def emit(self, event: str, *args: object) -> None:
        for callback in self.handlers.get(event, []):
            callback(*args)

    def isconnected(self) -> bool:
        return self.connected

    def arrive(self, p: FakeParticipant) -> None:
        self.remote_participants[p.identity] = p
        self.emit("participant_connected", p)

    def depart(self, identity: str) -> None:
        p = self.remote_participants.pop(identity)
        self.emit("participant_disconnected", p)


class FakeRoomIO:
    def __init__(self, fake: FakeRoom) -> None:
        self.fake = fake
        self.linked_participant: FakeParticipant | None = None
        self.links: list[str] = []

    def set_participant(self, identity: str) -> None:
        self.links.append(identity)
        self.linked_participant = self.fake.remote_participants[identity]


@dataclass
class FakeSession:
    room_io: FakeRoomIO
    user_state: str = "listening"
