"""Drive a real, unmodified upstream hivemind-bus-client (run with that client's own venv).

    python upstream_client.py PORT ACCESS_KEY PASSWORD MODE [--no-binarize] [--tls]

MODE is `utter` (send an utterance, wait for speak and ovos.utterance.handled), `refused`
(send a message type the client may not send, wait for hive.message.refused) or `connect`
(only the handshake). Prints one JSON line with what happened, then waits for stdin to close
so the test can look at the server's side of the live connection. Never imports hivecall.
"""

from __future__ import annotations

import json
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
    from ovos_bus_client.message import Message  # type: ignore[import-not-found]

    client = HiveMessageBusClient(
        key=key,
        password=password,
        host="wss://127.0.0.1" if "--tls" in sys.argv else "ws://127.0.0.1",
        port=int(port),
        useragent="interop-test",
        binarize=binarize,
    )
    got: dict[str, list[dict[str, object]]] = {
        "speak": [],
        "ovos.utterance.handled": [],
        "hive.message.refused": [],
    }
    done = threading.Event()

    def on(kind: str) -> Callable[[Any], None]:
        def handler(message: Any) -> None:
            got[kind].append(message.data)
            if kind != "speak":
                done.set()

        return handler

    for kind in got:
        client.on(kind, on(kind))
    t0 = time.monotonic()
    threading.Thread(target=client.connect, kwargs={"site_id": "interop"}, daemon=True).start()
    shook = client.handshake_event.wait(12)
    result: dict[str, object] = {"handshake": shook, "handshake_s": round(time.monotonic() - t0, 3)}
    result["cipher"] = str(getattr(client.cipher, "value", client.cipher))
    result["encoding"] = str(getattr(client.json_encoding, "value", client.json_encoding))
    if shook and mode == "utter":
        client.emit(
            Message(
                "recognizer_loop:utterance",
                {"utterances": ["hello from upstream"], "lang": "en-us"},
            )
        )
        result["answered"] = done.wait(15)
    elif shook and mode == "refused":
        client.emit(Message("mycroft.stop", {}))
        result["answered"] = done.wait(15)
    result.update(got)
    print(MARK + json.dumps(result), flush=True)
    sys.stdin.read()
    client.close()


if __name__ == "__main__":
    main()
