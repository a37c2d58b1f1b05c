"""A caller made of aiortc: plays PCM into a local call and records what the hub says back."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioResampler

from hivecall.speech.tts import RATE, resample
from hivecall.voice.local.ice import allow_loopback_ice
from hivecall.voice.local.track import SpeechTrack


class PcmTrack(SpeechTrack):
    """A microphone that says the queued 16 kHz PCM in real time, then stays silent (the hub's
    own outgoing track, which does exactly that at 48 kHz)."""

    def say(self, pcm16k: bytes) -> None:
        self.play(resample(np.frombuffer(pcm16k, dtype=np.int16), 16000, RATE))

    @property
    def done(self) -> bool:
        return not self.playing


class Caller:
    def __init__(self, *, microphone: bool = True) -> None:
        allow_loopback_ice()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.mic = PcmTrack() if microphone else None
        self.events: list[dict[str, Any]] = []
        self.heard = bytearray()  # the hub's voice, 16 kHz mono
        self._tasks: list[asyncio.Task[None]] = []
        if self.mic is not None:
            self.pc.addTrack(self.mic)
        else:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.channel = self.pc.createDataChannel("oai-events")
        self.channel.on("message", lambda m: self.events.append(json.loads(m)))
        self.channel.on("open", lambda: self.channel.send(json.dumps({"type": "response.create"})))
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._record(track)))

    async def _record(self, track: MediaStreamTrack) -> None:
        resampler = AudioResampler(format="s16", layout="mono", rate=16000)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                for out in resampler.resample(frame):  # type: ignore[arg-type]
                    self.heard += out.to_ndarray().tobytes()

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def answered(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def until(self, check: Any, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
