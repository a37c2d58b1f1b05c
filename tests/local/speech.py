"""Spoken test input, made with the hub's own Piper voice, and word matching for ASR output."""

from __future__ import annotations

import functools
import re
import wave
from pathlib import Path

import numpy as np

from hivecall.voice.local.models import shared
from hivecall.voice.local.stt import pcm16_to_float
from hivecall.voice.local.tts import RATE as TTS_RATE
from hivecall.voice.local.tts import resample

RATE = 16000


@functools.cache
def said(text: str) -> bytes:
    """`text` spoken, as 16 kHz mono 16-bit PCM."""
    pcm = shared().synthesizer().pcm(text)
    return resample(np.frombuffer(pcm, dtype=np.int16), TTS_RATE, RATE)


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(int(seconds * rate) * 2)


def transcribe(pcm16k: bytes) -> str:
    return shared().transcriber().transcribe(pcm16_to_float(pcm16k))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def overlap(heard: str, expected: str) -> float:
    """The share of `expected`'s words found in `heard` (ASR may miss or bend a few)."""
    want = words(expected)
    got = set(words(heard))
    return sum(w in got for w in want) / max(len(want), 1)


def write_wav(path: Path, pcm16k: bytes) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm16k)
    return path
