"""Drive a real, unmodified upstream hivemind-bus-client (run with that client's own venv).

    python upstream_client.py PORT ACCESS_KEY PASSWORD MODE [--no-binarize] [--tls]
        [--audio PCM_FILE] [--out DIR] [--max-protocol N]

MODE is `utter` (send an utterance, wait for speak and ovos.utterance.handled), `refused`
(send a message type the client may not send, wait for hive.message.refused) or `connect`
(only the handshake). Satellite modes send PCM_FILE (16 kHz mono s16) as a `bin` frame:
`audio-handle` (STT_AUDIO_HANDLE: a turn), `audio-transcribe` (STT_AUDIO_TRANSCRIBE: words
only), `audio-raw` (RAW_AUDIO in 4096-byte chunks, like hivemind-mic-satellite), and `synth`
asks for `speak:synth`; TTS_AUDIO received is written to DIR/tts-N.wav. Prints one JSON line
with what happened, then waits for stdin to close so the test can look at the server's side of
the live connection. `--max-protocol N` passes max_protocol_version=N to the client (the 1.2
line takes it; 1 or 2 keeps it on the password handshake when the server offers v3 Noise);
`utter-long` sends an utterance of ~150 kB, past one Noise message, so both ends chunk it.
The result says which protocol the session got (3 when a Noise transport is set up), and
`own_retries`: how often the client started the handshake itself because its 5 s wait for the
server's offer ran out (watched by wrapping the protocol's start_handshake, which still runs
unchanged; both lines call it only from that wait). Never imports hivecall.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

MARK = "HIVECALL-RESULT "


def main() -> None:
    port, key, password, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    binarize = "--no-binarize" not in sys.argv
    from hivemind_bus_client import HiveMessageBusClient  # type: ignore[import-not-found]
    from hivemind_bus_client.client import BinaryDataCallbacks  # type: ignore[import-not-found]
    from hivemind_bus_client.message import (  # type: ignore[import-not-found]
        HiveMessage,
        HiveMessageType,
    )
    from hivemind_bus_client.protocol import (  # type: ignore[import-not-found]
        HiveMindSlaveProtocol,
    )
    from hivemind_bus_client.serialization import (  # type: ignore[import-not-found]
        HiveMindBinaryPayloadType,
    )
    from ovos_bus_client.message import Message  # type: ignore[import-not-found]

    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else "."
    tts: list[dict[str, object]] = []
    done = threading.Event()

    class Tts(BinaryDataCallbacks):  # type: ignore[misc]
        def handle_receive_tts(self, data: bytes, utterance: str, lang: str, name: str) -> None:
            path = f"{out}/tts-{len(tts)}.wav"
            with open(path, "wb") as f:
                f.write(data)
            tts.append({"path": path, "utterance": utterance, "lang": lang, "file_name": name})
            if mode == "synth":
                done.set()

    options: dict[str, Any] = {}
    if "--max-protocol" in sys.argv:
        options["max_protocol_version"] = int(sys.argv[sys.argv.index("--max-protocol") + 1])
    client = HiveMessageBusClient(
        **options,
        key=key,
        password=password,
        host="wss://127.0.0.1" if "--tls" in sys.argv else "ws://127.0.0.1",
        port=int(port),
        useragent="interop-test",
        binarize=binarize,
        bin_callbacks=Tts(),
    )
    got: dict[str, list[dict[str, object]]] = {
        "speak": [],
        "ovos.utterance.handled": [],
        "hive.message.refused": [],
        "recognizer_loop:transcribe.response": [],
        "recognizer_loop:record_begin": [],
        "recognizer_loop:record_end": [],
        "recognizer_loop:utterance": [],
        "recognizer_loop:speech.recognition.unknown": [],
    }
    final = {
        "ovos.utterance.handled",
        "hive.message.refused",
        "recognizer_loop:transcribe.response",
    }

    def on(kind: str) -> Callable[[Any], None]:
        def handler(message: Any) -> None:
            got[kind].append(message.data)
            if kind in final:
                done.set()

        return handler

    for kind in got:
        client.on(kind, on(kind))
    own_retries: list[str] = []
    start_handshake = HiveMindSlaveProtocol.start_handshake

    def watched(self: Any) -> Any:
        if sys._getframe(1).f_code.co_name == "wait_for_handshake":
            own_retries.append("retry")
        return start_handshake(self)

    HiveMindSlaveProtocol.start_handshake = watched
    t0 = time.monotonic()
    threading.Thread(target=client.connect, kwargs={"site_id": "interop"}, daemon=True).start()
    shook = client.handshake_event.wait(12)
    result: dict[str, object] = {
        "handshake": shook,
        "handshake_s": round(time.monotonic() - t0, 3),
        "own_retries": len(own_retries),
    }
    result["cipher"] = str(getattr(client.cipher, "value", client.cipher))
    result["encoding"] = str(getattr(client.json_encoding, "value", client.json_encoding))
    result["protocol"] = 3 if getattr(client, "noise_transport", None) is not None else 1
    text = "hello from upstream"
    if mode == "utter-long":
        text += " " + os.urandom(75_000).hex()  # does not compress: binarized, it chunks too
    if shook and mode in ("utter", "utter-long"):
        client.emit(Message("recognizer_loop:utterance", {"utterances": [text], "lang": "en-us"}))
        result["answered"] = done.wait(15)
    elif shook and mode == "refused":
        client.emit(Message("mycroft.stop", {}))
        result["answered"] = done.wait(15)
    elif shook and mode == "synth":
        client.emit(Message("speak:synth", {"utterance": "the kettle is on", "lang": "en-us"}))
        result["answered"] = done.wait(30)
    elif shook and mode.startswith("audio-"):
        with open(sys.argv[sys.argv.index("--audio") + 1], "rb") as f:
            pcm = f.read()
        meta = {"lang": "en-us", "sample_rate": 16000, "sample_width": 2}
        kinds = {
            "audio-handle": HiveMindBinaryPayloadType.STT_AUDIO_HANDLE,
            "audio-transcribe": HiveMindBinaryPayloadType.STT_AUDIO_TRANSCRIBE,
            "audio-raw": HiveMindBinaryPayloadType.RAW_AUDIO,
        }
        chunks = (
            [pcm[i : i + 4096] for i in range(0, len(pcm), 4096)] if mode == "audio-raw" else [pcm]
        )
        for chunk in chunks:
            client.emit(
                HiveMessage(HiveMessageType.BINARY, payload=chunk, metadata=meta),
                binary_type=kinds[mode],
            )
        result["answered"] = done.wait(60)
        if result["answered"] and mode != "audio-transcribe":
            deadline = time.monotonic() + 30  # the TTS_AUDIO of a spoken answer
            while not tts and time.monotonic() < deadline:
                time.sleep(0.05)
    result["tts"] = tts
    result.update(got)
    if mode == "utter-long":  # keep the line short: the test reads it with a line limit
        result["speak"] = [{"chars": len(d["utterance"])} for d in got["speak"]]  # type: ignore[arg-type]
        result["sent_chars"] = len(text)
    print(MARK + json.dumps(result), flush=True)
    sys.stdin.read()
    client.close()


if __name__ == "__main__":
    main()
