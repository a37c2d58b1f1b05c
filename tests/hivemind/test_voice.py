"""Voice satellites: audio `bin` frames from the real upstream client, transcribed on the hub,
run as a turn on the client's agent, answered with speak and TTS_AUDIO.

The speech is the hub's own Piper voice (tests/local/speech.py); what the hub heard is checked
word by word against what was said, and the TTS_AUDIO it sent back is transcribed again.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from hivecall.hivemind.voice import Speech, Stream, audio_format, pcm_of, tts_frame, wav
from hivecall.hivemind_protocol import binary
from hivecall.hivemind_protocol.binary import BinType
from hivecall.hivemind_protocol.wire import MsgType
from hivecall.speech.tts import resample
from tests.hivemind.conftest import Hive, MakeHive
from tests.hivemind.peer import Peer
from tests.hivemind.test_interop import Upstream
from tests.local.speech import overlap, said, silence, transcribe

ASKED = "what is the weather like in paris today"


def pcm_file(tmp_path: Path, text: str, *, tail: float = 0.0) -> Path:
    path = tmp_path / "said.pcm"
    path.write_bytes(said(text) + silence(tail))
    return path


def heard_wav(path: str) -> str:
    """What the hub's STT hears in a TTS_AUDIO WAV the client received."""
    with wave.open(path) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    return transcribe(resample(np.frombuffer(pcm, dtype=np.int16), rate, 16000))


def assert_spoken_turn(r: dict, hive_turns: list[tuple[str, str]]) -> None:  # type: ignore[type-arg]
    assert r["answered"], r
    (speak,) = r["speak"]
    assert overlap(speak["utterance"], ASKED) >= 0.7, speak  # the echo agent repeats it
    (tts,) = r["tts"]
    assert tts["utterance"] == speak["utterance"] and tts["file_name"].endswith(".wav")
    assert overlap(heard_wav(tts["path"]), speak["utterance"]) >= 0.6
    assert r["ovos.utterance.handled"] == [{}]
    ((source, message),) = hive_turns
    assert source == "hivemind" and overlap(message, ASKED) >= 0.7, message


pytestmark = pytest.mark.slow


@pytest.mark.parametrize("version", ["v044", "v12"])
async def test_stt_audio_handle_is_a_spoken_turn(
    make_hive: MakeHive, tmp_path: Path, version: str
) -> None:
    async with make_hive() as hive:
        cred = await hive.add("satellite")
        audio = pcm_file(tmp_path, ASKED)
        extra = ("--audio", str(audio), "--out", str(tmp_path))
        client = await Upstream.run(version, hive, cred, "audio-handle", tmp_path, extra=extra)
        try:
            turns = [(t.source, t.message) for t in await hive.hub.bridge.list_turns()]
            assert_spoken_turn(client.result, turns)
            assert client.result["protocol"] == (3 if version == "v12" else 1)  # 1.2: Noise
        finally:
            await client.aclose()


async def test_raw_audio_stream_is_cut_by_the_vad(hive: Hive, tmp_path: Path) -> None:
    """A microphone stream in 4096-byte chunks, as hivemind-mic-satellite sends it."""
    cred = await hive.add("satellite")
    audio = tmp_path / "stream.pcm"
    audio.write_bytes(silence(0.5) + said(ASKED) + silence(1.5))
    extra = ("--audio", str(audio), "--out", str(tmp_path))
    client = await Upstream.run("v12", hive, cred, "audio-raw", tmp_path, extra=extra)
    try:
        r = client.result
        turns = [(t.source, t.message) for t in await hive.hub.bridge.list_turns()]
        assert_spoken_turn(r, turns)
        assert r["recognizer_loop:record_begin"] == [{}] and r["recognizer_loop:record_end"] == [{}]
        (heard,) = r["recognizer_loop:utterance"]
        assert overlap(heard["utterances"][0], ASKED) >= 0.7
    finally:
        await client.aclose()


async def test_stt_audio_transcribe_answers_words_only(hive: Hive, tmp_path: Path) -> None:
    cred = await hive.add("satellite")
    extra = ("--audio", str(pcm_file(tmp_path, ASKED)), "--out", str(tmp_path))
    client = await Upstream.run("v12", hive, cred, "audio-transcribe", tmp_path, extra=extra)
    try:
        r = client.result
        assert r["answered"], r
        ((response),) = r["recognizer_loop:transcribe.response"]
        ((text, confidence),) = response["transcriptions"]
        assert overlap(text, ASKED) >= 0.7 and confidence == 1.0
        assert r["speak"] == [] and r["tts"] == []
    finally:
        await client.aclose()
    assert await hive.hub.bridge.list_turns() == []  # transcribing is not a turn


async def test_speak_synth_sends_tts_audio(hive: Hive, tmp_path: Path) -> None:
    cred = await hive.add("satellite")
    client = await Upstream.run(
        "v12", hive, cred, "synth", tmp_path, extra=("--out", str(tmp_path))
    )
    try:
        r = client.result
        assert r["answered"] and r["protocol"] == 3, r  # TTS_AUDIO inside Noise messages
        (tts,) = r["tts"]
        assert tts["utterance"] == "the kettle is on" and tts["lang"] == "en-us"
        assert overlap(heard_wav(tts["path"]), "the kettle is on") >= 0.75
    finally:
        await client.aclose()


async def test_without_the_speech_extra_audio_is_refused_clearly(
    make_hive: MakeHive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hivecall.speech import models

    monkeypatch.setattr(models, "problem", lambda: "local calls need the speech extra: pip x")
    async with make_hive() as hive:
        cred = await hive.add("satellite")
        extra = ("--audio", str(pcm_file(tmp_path, "hello")), "--out", str(tmp_path))
        client = await Upstream.run("v12", hive, cred, "audio-handle", tmp_path, extra=extra)
        try:
            r = client.result
            assert r["answered"], r
            (refusal,) = r["hive.message.refused"]
            assert refusal["msg_type"] == "bin"
            assert refusal["error"]["code"] == "speech_unavailable"
            assert "speech extra" in refusal["error"]["message"]
            assert r["speak"] == [] and r["tts"] == []
        finally:
            await client.aclose()
        assert await hive.hub.bridge.list_turns() == []


# -- the hub's own peer: formats and limits ----------------------------------------------------


async def bin_frame(peer: Peer, payload: bytes, bin_type: BinType, **meta: object) -> None:
    assert peer.sealer is not None
    await peer.ws.send(
        peer.sealer.seal(binary.encode(MsgType.BIN, payload, metadata=meta, bin_type=bin_type))
    )


async def test_bad_audio_formats_are_refused_and_the_connection_lives(hive: Hive) -> None:
    cred = await hive.add("satellite")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake(binarize=True)
    cases: list[tuple[dict[str, object], BinType, str]] = [
        ({"sample_width": 1}, BinType.STT_AUDIO_HANDLE, "16-bit"),
        ({"sample_rate": 4000}, BinType.STT_AUDIO_HANDLE, "sample_rate"),
        ({"sample_rate": "16000"}, BinType.STT_AUDIO_TRANSCRIBE, "sample_rate"),
        ({"sample_rate": 44100}, BinType.RAW_AUDIO, "16 kHz"),
        ({}, BinType.FILE, "only audio"),
    ]
    for meta, kind, why in cases:
        await bin_frame(peer, bytes(3200), kind, **meta)
        name, data = await peer.recv_bus()
        assert name == "hive.message.refused" and why in data["error"]["message"], data
    await peer.utter("still here")
    assert (await peer.recv_bus())[0] == "speak"
    await peer.aclose()


def test_audio_format_and_wav_unwrapping() -> None:
    assert audio_format({}) == (16000, None)
    assert audio_format({"sample_rate": 8000, "lang": "en-us"}) == (8000, "en-us")
    pcm = bytes(range(256)) * 8
    assert pcm_of(wav(pcm, 22050), 16000) == (pcm, 22050)
    assert pcm_of(pcm + b"\x01", 16000) == (pcm, 16000)  # an odd byte is dropped


def test_tts_metadata_fits_upstreams_limit() -> None:
    long = "a fairly long answer with many different words " * 40
    frame = binary.decode(tts_frame(wav(bytes(64), 22050), long, "en-us"), max_inflated=2**20)
    assert frame.bin_type is BinType.TTS_AUDIO
    assert long.startswith(frame.metadata["utterance"]) and frame.metadata["file_name"]


def test_stream_events() -> None:
    stream = Stream()
    events = []
    audio = silence(0.4) + said(ASKED) + silence(1.0)
    for i in range(0, len(audio), 4096):
        events += stream.feed(audio[i : i + 4096])
    assert [k for k, _ in events] == ["start", "end"]
    assert overlap(transcribe(events[1][1]), ASKED) >= 0.7


async def test_speech_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The models run in the process's one STT and one TTS thread (the same ones local calls
    use: speech/workers.py), never the event loop's."""
    import threading

    from hivecall.speech.models import shared

    spoken = said("good morning")
    threads: list[str] = []
    for model, method in ((shared().transcriber(), "transcribe"), (shared().synthesizer(), "pcm")):
        real = getattr(model, method)

        def spy(*args: object, _real: object = real) -> object:
            threads.append(threading.current_thread().name)
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(model, method, spy)
    speech = Speech()
    assert overlap(await speech.transcribe(spoken, 16000), "good morning") == 1.0
    assert (await speech.synthesize("good morning"))[:4] == b"RIFF"
    assert [t.split("_")[0] for t in threads] == ["hivecall-stt", "hivecall-tts"], threads
