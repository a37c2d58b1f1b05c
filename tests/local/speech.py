"""Spoken test input, made with the hub's own Piper voice, and word matching for ASR output."""

from __future__ import annotations

import functools
import re
import wave
from pathlib import Path

import numpy as np
from piper import SynthesisConfig

from hivecall.speech.models import shared
from hivecall.speech.stt import pcm16_to_float
from hivecall.speech.tts import RATE as TTS_RATE
from hivecall.speech.tts import resample

RATE = 16000
# Piper says a text a little differently each time (its VITS noise); with no noise the same
# text is the same audio, so a test's caller sounds the same in every run.
STEADY = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)


@functools.cache
def said(text: str) -> bytes:
    """`text` spoken, as 16 kHz mono 16-bit PCM."""
    pcm = shared().synthesizer().pcm(text, STEADY)
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


def phrases(pcm16k: bytes, *, gap_s: float = 0.8) -> list[str]:
    """What a recording says, phrase by phrase: cut at silences of at least `gap_s` (between two
    things the hub says; a pause inside a line is shorter), each part transcribed alone."""
    frame = RATE // 50
    samples = np.frombuffer(pcm16k[: len(pcm16k) // 2 * 2], dtype=np.int16)
    count = len(samples) // frame
    loud = np.abs(samples[: count * frame].reshape(count, frame)).max(axis=1) >= 300
    parts: list[tuple[int, int]] = []
    start, quiet = -1, 0
    for i, voiced in enumerate(loud):
        if voiced:
            if start < 0:
                start = i
            quiet = 0
        elif start >= 0:
            quiet += 1
            if quiet * 0.02 >= gap_s:
                parts.append((start, i - quiet + 1))
                start, quiet = -1, 0
    if start >= 0:
        parts.append((start, count))
    out = []
    for a, b in parts:
        text = transcribe(silence(0.2) + pcm16k[a * frame * 2 : b * frame * 2] + silence(0.3))
        if text:
            out.append(text)
    return out
