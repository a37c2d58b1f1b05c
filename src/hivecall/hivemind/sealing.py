"""A handshake's outcome: the one object that seals every frame a connection sends, and opens
the sealed frames it receives.

- `V1Sealer`, from the password handshake: the AEAD key (derived off the event loop while the
  client derives its own, so the first frame in or out waits for it), the negotiated text
  encoding, and whether messages travel binarized. It refuses a replayed nonce.
- `V3Sealer`, from the Noise handshake (v3.py): the Noise transport, whose counter nonces must
  reach the wire in order, so sends take a lock.

Bin frames (satellite audio) travel binarized whatever was negotiated, as upstream sends them.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection

from hivecall.hivemind.connection import ProtocolViolation
from hivecall.hivemind.noise import Transport
from hivecall.hivemind_protocol import binary
from hivecall.hivemind_protocol.crypto import Cipher, Sealer
from hivecall.hivemind_protocol.encodings import Encoding
from hivecall.hivemind_protocol.wire import HiveMessage

# A session key may seal this many client frames; then the client must reconnect (nonces of
# every frame are remembered to refuse replays, and that memory is bounded).
MAX_FRAMES_PER_KEY = 65_536


def binary_frame(msg: HiveMessage) -> bytes:
    """A message binarized (binary.py)."""
    return binary.encode(msg.msg_type, msg.payload, metadata=msg.metadata or None)


class V1Sealer:
    __slots__ = ("_frames", "_key", "_nonces", "_sealer", "binarize", "cipher", "encoding")

    def __init__(
        self, cipher: Cipher, encoding: Encoding, *, binarize: bool, key: asyncio.Future[bytes]
    ) -> None:
        self.cipher = cipher
        self.encoding = encoding
        self.binarize = binarize
        self._key: asyncio.Future[bytes] | None = key
        self._sealer: Sealer | None = None
        self._nonces: set[int] = set()
        self._frames = 0

    async def _ready(self) -> Sealer:
        if self._sealer is None:
            assert self._key is not None
            self._sealer = Sealer(self.cipher, await self._key)
            self._key = None  # the derivation is done with: keep only the cipher
        return self._sealer

    async def send(self, ws: ServerConnection, msg: HiveMessage) -> None:
        sealer = await self._ready()
        if self.binarize:
            await ws.send(sealer.seal(binary_frame(msg)))
        else:
            await ws.send(sealer.seal_json(msg.to_json(), self.encoding))

    async def send_bin(self, ws: ServerConnection, frame: bytes) -> None:
        await ws.send((await self._ready()).seal(frame))

    async def open(self, frame: bytes) -> tuple[bool, bytes]:
        """(binarized, plaintext) of a binary frame."""
        nonce, data = (await self._ready()).open(frame)
        self._note(nonce)
        return True, data

    async def open_json(self, frame: dict[str, object]) -> tuple[bool, bytes]:
        """(binarized, plaintext) of a JSON frame already parsed into a dict."""
        nonce, data = (await self._ready()).open_json(frame, self.encoding)
        self._note(nonce)
        return False, data

    def _note(self, nonce: bytes) -> None:
        """Refuse a nonce this key has already opened (a replayed frame)."""
        key = int.from_bytes(nonce[:8], "big") ^ len(nonce)
        if key in self._nonces:
            raise ProtocolViolation("nonce reused")
        self._frames += 1
        if self._frames > MAX_FRAMES_PER_KEY:
            raise ProtocolViolation("too many frames on one session key")
        self._nonces.add(key)


class V3Sealer:
    __slots__ = ("_lock", "_transport", "binarize")

    def __init__(self, transport: Transport, *, binarize: bool, lock: asyncio.Lock) -> None:
        self._transport = transport
        self.binarize = binarize
        self._lock = lock

    async def send(self, ws: ServerConnection, msg: HiveMessage) -> None:
        if self.binarize:
            await self._send(ws, binary_frame(msg), binarized=True)
        else:
            await self._send(ws, msg.to_json(), binarized=False)

    async def send_bin(self, ws: ServerConnection, frame: bytes) -> None:
        await self._send(ws, frame, binarized=True)

    async def _send(self, ws: ServerConnection, body: bytes, *, binarized: bool) -> None:
        # Under the lock: nonces must reach the wire in order, and a long message's chunks
        # together.
        async with self._lock:
            for frame in self._transport.seal(body, binarized=binarized):
                await ws.send(frame)

    async def open(self, frame: bytes) -> tuple[bool, bytes] | None:
        """(binarized, plaintext), or None for a chunk of a longer message."""
        return self._transport.open(frame)


ConnectionSealer = V1Sealer | V3Sealer
