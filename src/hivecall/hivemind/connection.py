"""One HiveMind connection's state, and the way out to its client.

Kept small (slots, no per-connection tasks while idle) so a hub holds thousands of them. The
handshakes (handshake.py, v3.py) fill it in; every message to the client goes through `send`,
sealed by the handshake's outcome (sealing.py) and held to what the client may receive.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection

from hivecall.errors import Forbidden
from hivecall.hivemind.noise import Handshake, Transport
from hivecall.hivemind.permissions import ClientRecord
from hivecall.hivemind.voice import Stream
from hivecall.hivemind_protocol.crypto import Cipher
from hivecall.hivemind_protocol.encodings import Encoding
from hivecall.hivemind_protocol.wire import HiveMessage, MsgType, bus

if TYPE_CHECKING:
    from hivecall.hivemind.sealing import ConnectionSealer

REFUSED = "hive.message.refused"


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
        "closing",
        "encoding",
        "noise",
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
        self.sealer: ConnectionSealer | None = None  # the handshake's outcome
        self.noise: Handshake | Transport | None = None  # v3 only: the handshake, the session
        self.send_lock: asyncio.Lock | None = None  # v3: what V3Sealer sends under
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

    async def send(self, msg: HiveMessage) -> None:
        """`msg` to the client, sealed. A bus message the client may not receive is left out
        (a refusal always goes), and nothing goes before the handshake has given a sealer."""
        if msg.msg_type is MsgType.BUS:
            kind = msg.payload.get("type")
            if isinstance(kind, str) and kind != REFUSED and not self.client.may_receive(kind):
                return
        if self.sealer is not None:
            await self.sealer.send(self.ws, msg)

    async def send_bin(self, frame: bytes) -> None:
        """A binarized bin frame (binary.py) to the client, sealed."""
        if self.sealer is not None:
            await self.sealer.send_bin(self.ws, frame)

    async def refuse(
        self, msg_type: MsgType, bus_type: str | None, why: str, *, code: str = "hivemind_refused"
    ) -> None:
        """Tell the client its message was refused (never a silent drop), in the hub's one
        error shape."""
        error = Forbidden(why, code=code).as_dict()
        data = {"msg_type": msg_type.value, "type": bus_type, **error}
        await self.send(bus(REFUSED, data, {"destination": self.peer}))


def plain(msg_type: MsgType, payload: dict[str, Any]) -> str:
    return json.dumps(HiveMessage(msg_type, payload).as_dict())
