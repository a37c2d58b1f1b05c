"""Who is in a cloud call's room, for one job: people and agents, in what order, and when.

People join from browsers or phones and are heard; agents (this one and the call's others) are
never heard, only waited for: an agent named before this one gets to answer first.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from livekit import rtc

from hivecall.calls.cloud.wire import KIND
from hivecall.cloud.running_turns import Session

# People join from browsers (standard) or phones (SIP); agents are never heard.
HUMAN_KINDS: list[rtc.ParticipantKind.ValueType] = [
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
]
AGENT_STATE = "lk.agent.state"  # the attribute every livekit-agents session publishes
BUSY = ("thinking", "speaking")
START_WITHIN = 3.0  # seconds an agent named earlier gets to start its answer
FINISH_WITHIN = 90.0  # seconds this agent waits at most for the agents named before it


def agent_identity(agent_id: str) -> str:
    return "agent-" + re.sub(r"[^A-Za-z0-9_-]", "_", agent_id)[:64]


def is_human(p: rtc.Participant) -> bool:
    return p.kind in HUMAN_KINDS and p.attributes.get(KIND) != "agent"


def is_agent(p: rtc.Participant) -> bool:
    return p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT or p.attributes.get(KIND) == "agent"


class Room:
    """What one job needs from its LiveKit room: who is present, in what order, and when."""

    def __init__(self, room: rtc.Room, *, me: str, known: Sequence[str]) -> None:
        self.room = room
        self.me = me
        self.known = tuple(known)  # the call's agents as the hub listed them (dispatch order)
        self.changed = asyncio.Event()
        for event in ("participant_connected", "participant_disconnected", "disconnected"):
            room.on(event, self._poke)

    def _poke(self, *_: object) -> None:
        self.changed.set()

    def humans(self) -> list[rtc.RemoteParticipant]:
        return [p for p in self.room.remote_participants.values() if is_human(p)]

    def agents(self) -> tuple[str, ...]:
        """The agents present, in join order: the call's agents in the hub's order, then any
        others by when they joined. This agent is always one of them."""
        far = datetime.max.replace(tzinfo=UTC)
        found: dict[str, tuple[int, datetime]] = {self.me: (self._rank(self.me), far)}
        for p in self.room.remote_participants.values():
            if is_agent(p):
                name = p.name or p.identity
                found.setdefault(name, (self._rank(name), p.joined_at or far))
        return tuple(sorted(found, key=lambda n: (*found[n], n)))

    def _rank(self, name: str) -> int:
        return self.known.index(name) if name in self.known else len(self.known)

    async def until(self, condition: Callable[[], bool], within: float | None) -> bool:
        """Wait until `condition()` holds (True), or `within` seconds pass or the room is left
        (False)."""
        deadline = None if within is None else time.monotonic() + within
        while not condition():
            if not self.room.isconnected():
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True

    def subscribe_humans(self) -> None:
        """Subscribe to people's audio only: other agents' speech never reaches this one."""

        def maybe(pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
            if pub.kind == rtc.TrackKind.KIND_AUDIO and is_human(participant):
                pub.set_subscribed(True)

        for p in self.room.remote_participants.values():
            for pub in p.track_publications.values():
                maybe(pub, p)
        self.room.on("track_published", maybe)

    def follow_speakers(self, session: Session) -> None:
        """An AgentSession hears one person at a time: hear whoever speaks, and someone else
        when the person heard leaves."""
        io = session.room_io

        def hear(identity: str) -> None:
            linked = io.linked_participant
            if linked is None or linked.identity != identity:
                io.set_participant(identity)

        def on_speakers(speakers: list[rtc.Participant]) -> None:
            people = [s for s in speakers if is_human(s)]  # never this agent: it is an agent
            linked = io.linked_participant
            if not people or session.user_state == "speaking":
                return
            if linked is None or all(p.identity != linked.identity for p in people):
                hear(people[0].identity)

        def on_left(participant: rtc.RemoteParticipant) -> None:
            linked = io.linked_participant
            others = [p for p in self.humans() if p.identity != participant.identity]
            if others and (linked is None or linked.identity == participant.identity):
                hear(others[0].identity)

        self.room.on("active_speakers_changed", on_speakers)
        self.room.on("participant_disconnected", on_left)

    def speaker(self, session: Session) -> str:
        linked = session.room_io.linked_participant
        return (linked.name or linked.identity) if linked else ""

    def others_talking(self) -> bool:
        """Another agent in the room is thinking or speaking (its session's published state)."""
        return any(
            is_agent(p)
            and (p.name or p.identity) != self.me
            and p.attributes.get(AGENT_STATE) in BUSY
            for p in self.room.remote_participants.values()
        )

    async def wait_for_answers(self, names: Sequence[str]) -> None:
        """Let the agents named before this one answer first: each gets START_WITHIN seconds
        to begin and FINISH_WITHIN in all to finish."""
        for name in names:
            p = next(
                (
                    x
                    for x in self.room.remote_participants.values()
                    if is_agent(x) and (x.name or x.identity) == name
                ),
                None,
            )
            if p is None:
                continue
            deadline = time.monotonic() + FINISH_WITHIN
            start_by = time.monotonic() + START_WITHIN
            started = False
            while time.monotonic() < deadline and self.room.isconnected():
                busy = p.attributes.get(AGENT_STATE) in BUSY
                started = started or busy
                if (started and not busy) or (not started and time.monotonic() > start_by):
                    break
                await asyncio.sleep(0.1)
