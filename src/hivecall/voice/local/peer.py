"""The hub's end of one local call: an aiortc peer connection around a LocalConversation.

The page's offer comes in, the answer goes back (the same exchange as OpenAI's /realtime/calls).
The caller's audio track feeds the conversation; the hub's SpeechTrack carries the agent's voice;
the page's `oai-events` data channel carries the conversation's events out and the page's
`response.create` (the greeting) in.

Network drops: aiortc has no "disconnected" state, and its ICE consent check gives up only
after ~30 s of silence (then it closes the connection itself, and "closed" looks like a hang-up).
So the caller's audio is the pulse: it arrives every 20 ms (silence included, muted included),
and a gap of LOST_AFTER_S is reported as `network lost`, the next frame as `network recovered`.
A connection that ends because its ICE failed (consent expired) fails the call with
`media_lost`; a gap alone does not (a microphone unplugged before a hang-up stops audio too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription

from hivecall.errors import BadRequest
from hivecall.voice.local.conversation import Emit, LocalConversation
from hivecall.voice.local.ice import allow_loopback_ice
from hivecall.voice.local.track import SpeechTrack, read_microphone

log = logging.getLogger(__name__)

Phase = Callable[[str, tuple[str, str] | None], Coroutine[Any, Any, None]]
Network = Callable[[Literal["lost", "recovered"]], Coroutine[Any, Any, None]]
MakeConversation = Callable[[SpeechTrack, Emit], LocalConversation]

# No audio from the caller for this long: the network dropped (a frame comes every 20 ms).
LOST_AFTER_S = 3.0
LOST = ("media_lost", "the call's audio connection was lost")


def speaker_only(offer: str) -> bool:
    """True when the page sends no audio (no microphone): its audio section is recvonly."""
    try:
        parsed = SessionDescription.parse(offer)
    except Exception as e:
        raise BadRequest("the offer is not valid SDP", code="invalid_sdp") from e
    audio = [m for m in parsed.media if m.kind == "audio"]
    if not audio:
        raise BadRequest("the offer has no audio section", code="invalid_sdp")
    return all(m.direction in ("recvonly", "inactive") for m in audio)


class LocalPeer:
    def __init__(self, *, conversation: MakeConversation, phase: Phase, network: Network) -> None:
        allow_loopback_ice()
        # No STUN or TURN: the hub answers from its own addresses (aiortc's default is Google's
        # public STUN server, which a private hub has no reason to call).
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.speaker = SpeechTrack()
        self.conversation = conversation(self.speaker, self._emit)
        self._phase = phase
        self._network = network
        self._channel: RTCDataChannel | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._heard_at: float | None = None  # the caller's latest audio frame (monotonic)
        self._lost = False
        self._ice_failed = False
        self._connected = False
        self._closing = False
        self._done = asyncio.Event()
        self.on_closed: Callable[[], None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.pc.addTrack(self.speaker)
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_channel)
        self.pc.on("connectionstatechange", self._on_state)

    async def answer(self, offer: str) -> str:
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except BadRequest:
            raise
        except Exception as e:
            raise BadRequest(f"the offer cannot be answered: {e}", code="invalid_sdp") from e
        self._follow_ice()
        return self.pc.localDescription.sdp

    def _follow_ice(self) -> None:
        """Note an ICE transport that fails on its own (consent expired: the network is gone);
        the connection then closes as if the caller had hung up."""
        dtls = [t.receiver.transport for t in self.pc.getTransceivers()]
        if self.pc.sctp is not None:
            dtls.append(self.pc.sctp.transport)
        for ice in {d.transport for d in dtls}:

            @ice.on("statechange")
            def _changed(ice: Any = ice) -> None:
                if ice.state == "failed":
                    self._ice_failed = True

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self._reader is None:
            self._reader = asyncio.create_task(
                read_microphone(track, self._heard), name="local-call-microphone"
            )
            self._watch = asyncio.create_task(self._watch_network(), name="local-call-network")

    def _heard(self, frame: bytes) -> None:
        self._heard_at = time.monotonic()
        if self._lost:
            self._lost = False
            self._spawn(self._network("recovered"))
        self.conversation.feed(frame)

    async def _watch_network(self) -> None:
        # Only once audio has flowed: before that the connection is still being set up.
        tick = LOST_AFTER_S / 4
        last = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            woke_late, last = now - last > 2 * tick, now
            heard = self._heard_at
            if heard is None or self._lost:
                continue
            if woke_late:
                # The event loop itself stood still: the audio that came meanwhile is unread.
                self._heard_at = now
            elif now - heard > LOST_AFTER_S:
                self._lost = True
                self._spawn(self._network("lost"))

    def _on_channel(self, channel: RTCDataChannel) -> None:
        self._channel = channel

        @channel.on("open")
        def _open() -> None:
            self._spawn(self._phase("talking", None))

        @channel.on("message")
        def _message(data: Any) -> None:
            self._from_page(data)

        @channel.on("close")
        def _close() -> None:
            self._spawn(self._channel_closed())

        if channel.readyState == "open":
            _open()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _from_page(self, data: Any) -> None:
        try:
            event = json.loads(data)
        except (TypeError, ValueError):
            return
        if isinstance(event, dict) and event.get("type") == "response.create":
            self.conversation.greet()

    def _emit(self, event: dict[str, Any]) -> None:
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(json.dumps(event))

    async def _channel_closed(self) -> None:
        # A dropped network closes the channel too: that is no hang-up.
        if self._ice_failed:
            await self._ended("failed", LOST)
        else:
            await self._ended("ended", None)

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self._connected = True
            await self._phase("talking", None)
        elif state == "failed":
            never = ("media_failed", "the audio connection failed")
            await self._ended("failed", LOST if self._connected else never)

    async def _ended(self, phase: str, error: tuple[str, str] | None) -> None:
        if self._closing:
            return
        await self._phase(phase, error)
        if not self._closing:
            await self.close()

    async def close(self) -> None:
        """Hang up and release everything; a second caller waits for the first to finish."""
        if self._closing:
            await self._done.wait()
            return
        self._closing = True
        try:
            for task in (self._watch, self._reader):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await self.conversation.aclose()
            self.speaker.stop()
            await self.pc.close()
            # Phase reports still in flight finish before the hub may close its store.
            others = [t for t in self._background if t is not asyncio.current_task()]
            await asyncio.gather(*others, return_exceptions=True)
        finally:
            self._done.set()
            if self.on_closed is not None:
                self.on_closed()

    @property
    def closed(self) -> bool:
        return self._closing
