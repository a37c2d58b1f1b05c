"""Cutting the caller's audio into utterances: webrtcvad on 20 ms frames, with hysteresis.

Events, in the order they can happen for one utterance:
  "start"  speech began (a few voiced frames close together): the moment to stop the agent
           talking over the user (barge-in);
  "pause"  a short silence after enough speech: transcription may start early, on a guess;
  "resume" speech came back before the utterance ended: the guess is void;
  "end"    the silence was long enough: the utterance is done (its audio comes with it).
A burst shorter than `min_speech_ms` (a cough, a click) ends as "drop" and is never a turn.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import webrtcvad

RATE = 16000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2  # 640 bytes of 16-bit mono

Kind = Literal["start", "pause", "resume", "end", "drop"]


@dataclass(frozen=True)
class Event:
    kind: Kind
    audio: bytes = b""  # the utterance so far ("pause") or whole ("end"), 16 kHz mono s16
    at: float = 0.0  # stream time (seconds) of the frame that caused the event


class Endpointer:
    def __init__(
        self,
        *,
        silence_ms: int = 500,
        pause_ms: int = 200,
        min_speech_ms: int = 200,
        max_utterance_ms: int = 30_000,
        aggressiveness: int = 2,
        preroll_ms: int = 300,
    ) -> None:
        self._vad = webrtcvad.Vad(aggressiveness)
        self._end = silence_ms // FRAME_MS
        self._pause = min(pause_ms // FRAME_MS, self._end)
        self._min_speech = min_speech_ms // FRAME_MS
        self._max = max_utterance_ms // FRAME_MS
        self._preroll: deque[bytes] = deque(maxlen=preroll_ms // FRAME_MS)
        self._recent: deque[bool] = deque(maxlen=6)  # start: 4 voiced of the last 6 frames
        self._frames: list[bytes] = []
        self._voiced = 0  # voiced frames in the current utterance
        self._silent = 0  # unvoiced frames since the last voiced one
        self._paused = False
        self.in_speech = False
        self.frames_seen = 0

    @property
    def now(self) -> float:
        return self.frames_seen * FRAME_MS / 1000

    def feed(self, frame: bytes) -> list[Event]:
        """One 20 ms frame (640 bytes); returns what it caused (usually nothing)."""
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"frames are {FRAME_BYTES} bytes of 16 kHz mono audio")
        self.frames_seen += 1
        voiced = self._vad.is_speech(frame, RATE)
        if not self.in_speech:
            self._preroll.append(frame)
            self._recent.append(voiced)
            if sum(self._recent) < 4:
                return []
            self.in_speech = True
            self._frames = list(self._preroll)
            self._voiced, self._silent, self._paused = sum(self._recent), 0, False
            self._preroll.clear()
            self._recent.clear()
            return [Event("start", at=self.now)]

        self._frames.append(frame)
        if voiced:
            self._voiced += 1
            self._silent = 0
            if self._paused:
                self._paused = False
                return [Event("resume", at=self.now)]
        else:
            self._silent += 1
        if self._silent >= self._end or len(self._frames) >= self._max:
            return [self._finish()]
        if self._silent == self._pause and self._voiced >= self._min_speech:
            self._paused = True
            return [Event("pause", self.audio(), at=self.now)]
        return []

    def audio(self) -> bytes:
        """The current utterance's audio, without the trailing silence beyond the pause."""
        keep = len(self._frames) - max(self._silent - self._pause, 0)
        return b"".join(self._frames[:keep])

    def _finish(self) -> Event:
        audio = self.audio()
        kind: Kind = "end" if self._voiced >= self._min_speech else "drop"
        self.in_speech = False
        self._frames, self._voiced, self._silent, self._paused = [], 0, 0, False
        return Event(kind, audio, at=self.now)
