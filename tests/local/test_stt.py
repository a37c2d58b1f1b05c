"""Whisper on a window cut to the utterance gives the words the standard 30 s window gives."""

from __future__ import annotations

import pytest

from hivecall.voice.local import stt
from hivecall.voice.local.models import shared
from hivecall.voice.local.stt import pcm16_to_float
from tests.local.speech import overlap, said, silence, words

SENTENCES = [
    "What is the status of the build?",
    "Stop.",
    "Could you check whether the nightly backup on the file server finished, "
    "and tell me how big it was?",
]


@pytest.mark.parametrize("text", SENTENCES)
def test_the_short_window_hears_what_the_standard_one_hears(text: str) -> None:
    transcriber = shared().transcriber()
    samples = pcm16_to_float(said(text) + silence(0.2))
    short = transcriber.transcribe(samples)
    assert words(short) == words(transcriber._standard(samples))
    assert overlap(short, text) >= 0.8


def test_a_window_too_short_to_read_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    transcriber = shared().transcriber()
    samples = pcm16_to_float(said(SENTENCES[0]))
    # A 6 s window with no padding after the speech: Whisper repeats the sentence in a loop.
    monkeypatch.setattr(stt, "MIN_WINDOW", 600)
    monkeypatch.setattr(stt, "PADDING", 0)
    before = transcriber.fallbacks
    text = transcriber.transcribe(samples)
    assert overlap(text, SENTENCES[0]) >= 0.8, text
    assert len(words(text)) <= len(words(SENTENCES[0])) + 1  # no looping output got through
    assert transcriber.fallbacks == before + 1


def test_utterances_longer_than_the_window_use_the_standard_way() -> None:
    transcriber = shared().transcriber()
    samples = pcm16_to_float(silence(28.0) + said("Hello there."))
    assert transcriber._short(samples) is None
    assert overlap(transcriber.transcribe(samples), "hello there") == 1.0
