"""One HiveMind connection's state: where its handshake is, its key, what it has seen.

Kept small (slots, no per-connection tasks while idle) so a hub holds thousands of them.
The rules it enforces are in `server.py`; this is only the state and the frame codecs.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from enum import IntEnum
from typing import Any

from websockets.asyncio.server import ServerConnection

from hivecall.hivemind import binary
from hivecall.hivemind.crypto import Cipher, Sealer
from hivecall.hivemind.encodings import Encoding
from hivecall.hivemind.noise import Handshake, Transport
from hivecall.hivemind.permissions import ClientRecord
from hivecall.hivemind.voice import Stream
from hivecall.hivemind.wire import HiveMessage, MsgType

# A session key may seal this many client frames; then the client must reconnect (nonces of
# every frame are remembered to refuse replays, and that memory is bounded).
MAX_FRAMES_PER_KEY = 65_536


class Phase(IntEnum):
    OFFERED = 0  # hello and shake sent; waiting for the client's shake
    KEYED = 1  # envelope sent; the key is being derived or known, nothing decrypted yet
    ESTABLISHED = 2  # a frame decrypted (v1) or the Noise handshake done (v3): only encrypted
    NOISE = 3  # v3: Noise message 2 sent; waiting for message 3


class ProtocolViolation(Exception):
    """The client broke a rule: the connection closes (1008) with this static reason."""


class Connection:
    __slots__ = (
        "audio",
        "binarize",
        "cipher",
        "client",
        "client_iv",
        "closing",
        "encoding",
        "frames",
        "key_future",
        "noise",
        "nonces",
        "opened",
        "peer",
        "phase",
        "pushed_tts",
        "sealer",
        "send_lock",
        "server_iv",
        "session_id",
        "shakes",
        "site_id",
        "timers",
        "turns",
        "ws",
    )

    def __init__(self, ws: ServerConnection, client: ClientRecord, server_iv: bytes) -> None:
        self.ws = ws
        self.client = client
        self.server_iv = server_iv
        self.session_id = uuid.uuid4().hex
        self.opened = time.monotonic()
        self.peer = f"{client.name}::{self.session_id}"
        self.site_id = "unknown"
        self.phase = Phase.OFFERED
        self.cipher = Cipher.AES_GCM
        self.encoding = Encoding.HEX
        self.binarize = False
        self.client_iv = b""
        self.sealer: Sealer | None = None
        self.key_future: asyncio.Future[bytes] | None = None
        self.noise: Handshake | Transport | None = None  # v3 only: the handshake, the session
        self.send_lock: asyncio.Lock | None = None  # v3: frames go out in their nonces' order
        self.nonces: set[int] = set()
        self.frames = 0
        self.shakes = 0
        self.turns = 0
        self.timers: list[asyncio.TimerHandle] = []
        self.closing = False
        self.audio: Stream | None = None  # the RAW_AUDIO stream, once a satellite sends one
        self.pushed_tts: list[str] = []  # answers whose audio went out unasked (few, recent)

    @property
    def transport(self) -> Transport | None:
        """The v3 session, once its handshake is done."""
        return self.noise if isinstance(self.noise, Transport) else None

    @property
    def version(self) -> int:
        """The protocol this connection speaks: 3 (Noise) or 1 (the password handshake)."""
        return 3 if self.noise is not None else 1

    def cancel_timers(self) -> None:
        for t in self.timers:
            t.cancel()
        self.timers.clear()

    def note_nonce(self, nonce: bytes) -> None:
        """Refuse a nonce this connection has already used (a replayed frame)."""
        key = int.from_bytes(nonce[:8], "big") ^ len(nonce)
        if key in self.nonces:
            raise ProtocolViolation("nonce reused")
        self.frames += 1
        if self.frames > MAX_FRAMES_PER_KEY:
            raise ProtocolViolation("too many frames on one session key")
        self.nonces.add(key)

    def encode(self, msg: HiveMessage) -> str | bytes:
        """The frame to send: plaintext before the key, then sealed (binary or JSON)."""
        if self.sealer is None:
            return msg.to_json().decode()
        if self.binarize:
            frame = binary.encode(msg.msg_type, msg.payload, metadata=msg.metadata or None)
            return self.sealer.seal(frame)
        return self.sealer.seal_json(msg.to_json(), self.encoding)

    def noise_body(self, msg: HiveMessage) -> tuple[bytes, bool]:
        """(body, binarized?) of a message for the v3 transport."""
        if self.binarize:
            return binary.encode(msg.msg_type, msg.payload, metadata=msg.metadata or None), True
        return msg.to_json(), False

    def encode_bin(self, frame: bytes) -> bytes:
        """A binarized frame, sealed (bin frames travel binarized whatever was negotiated,
        as upstream sends them)."""
        if self.sealer is None:
            raise ValueError("no session key yet")
        return self.sealer.seal(frame)


def plain(msg_type: MsgType, payload: dict[str, Any]) -> str:
    return json.dumps(HiveMessage(msg_type, payload).as_dict())
