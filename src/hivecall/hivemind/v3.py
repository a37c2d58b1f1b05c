"""HiveMind protocol v3 on the listener's side: the offer, the PSKs, the responder's two steps.

The client initiates Noise_XXpsk2 (noise.py): its `shake` with Noise message 1 is answered
with message 2; its `shake` with message 3 finishes the handshake, and from then on the
connection carries only Noise transport messages. A message 3 that does not authenticate (a
wrong password: the PSK differs) closes the connection as a wrong v1 envelope does. The real
hivemind-bus-client 1.2 itself gives up earlier, when message 2 does not decrypt for it, and
closes.

The PSK is argon2id (64 MiB, ~0.15 s): derived off the event loop, at most `parallel` at once
(their memory adds up), one derivation per client and password shared by concurrent
connections, and kept in a small LRU so a client's later connections cost only the X25519
work. Derived when the client first asks for v3, never for v1 clients.

The server's static key lives in HIVECALL_HOME (clients pin it on first use). Not done (as
upstream does): pinning each client's static key, and the KKpsk0 pattern that needs it; the
PSK already authenticates the client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from hivecall.hivemind import noise
from hivecall.hivemind.connection import Connection, Phase, ProtocolViolation
from hivecall.hivemind.permissions import ClientRecord
from hivecall.hivemind_protocol.encodings import Encoding

log = logging.getLogger(__name__)

PSK_CACHE_SIZE = 4096  # clients whose PSK is kept (32 bytes each)
MAX_HANDSHAKE_HEX = 2 * noise.MAX_MESSAGE


class PskCache:
    """argon2id PSKs by client and password: bounded, deduplicated, off the event loop."""

    def __init__(self, node_id: str, *, size: int = PSK_CACHE_SIZE, parallel: int = 0) -> None:
        self._node_id = node_id
        self._size = size
        self._done: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._running: dict[tuple[str, str], asyncio.Future[bytes]] = {}
        self._slots = asyncio.Semaphore(parallel or max(1, min(4, os.cpu_count() or 1)))

    def __len__(self) -> int:
        return len(self._done)

    async def get(self, client: ClientRecord) -> bytes:
        key = (client.id, client.password)
        psk = self._done.get(key)
        if psk is not None:
            self._done.move_to_end(key)
            return psk
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = asyncio.ensure_future(self._derive(key))
        return await asyncio.shield(running)  # one connection giving up stops no other

    async def _derive(self, key: tuple[str, str]) -> bytes:
        try:
            async with self._slots:
                psk = await asyncio.to_thread(noise.derive_psk, key[1], self._node_id)
            self._done[key] = psk
            while len(self._done) > self._size:
                self._done.popitem(last=False)
            return psk
        finally:
            self._running.pop(key, None)

    def retain(self, records: list[ClientRecord]) -> None:
        """Forget the PSKs of deleted clients and of replaced passwords."""
        keep = {(r.id, r.password) for r in records}
        for key in [k for k in self._done if k not in keep]:
            del self._done[key]


class NoiseResponder:
    """What the listener needs for v3: its static key, the PSKs, the two handshake steps."""

    def __init__(self, *, home: Path, node_id: str, max_message: int) -> None:
        self.static = noise.load_static_key(home)
        self.public_key = noise.public_bytes(self.static).hex()
        self.psks = PskCache(node_id)
        self._max_message = max_message

    @staticmethod
    def offer() -> dict[str, Any]:
        """The fields v3 adds to the server's shake offer."""
        return {
            "max_protocol_version": noise.PROTOCOL_VERSION,
            "noise": {"patterns": [noise.PATTERN], "suites": [noise.SUITE]},
        }

    async def first(
        self,
        conn: Connection,
        params: dict[str, Any],
        *,
        prologue: bytes,
        encodings: tuple[Encoding, ...],
        binarize: bool,
    ) -> bytes:
        """Read Noise message 1 and write message 2 (to send as a plaintext shake)."""
        if params.get("pattern") != noise.PATTERN or params.get("suite") != noise.SUITE:
            raise ProtocolViolation("Noise pattern or suite not offered")
        msg = _message(params)
        psk = await self.psks.get(conn.client)
        hs = noise.Handshake(initiator=False, static=self.static, psk=psk, prologue=prologue)
        try:
            asked = noise_json(hs.read_message(msg))
        except noise.NoiseError as e:
            raise ProtocolViolation("malformed Noise message") from e
        # The encoding only names a JSON form: v3 frames carry JSON as plain UTF-8 inside Noise.
        wanted = asked.get("encodings")
        allowed = {e.value: e for e in encodings}
        names = wanted[:32] if isinstance(wanted, list) else []
        chosen = next((allowed[w] for w in names if isinstance(w, str) and w in allowed), None)
        chosen = chosen or encodings[0]
        conn.encoding = chosen
        conn.binarize = binarize and asked.get("binarize") is True
        reply = hs.write_message(noise.canonical_json({"encoding": chosen.value}))
        conn.noise = hs
        conn.phase = Phase.NOISE
        return reply

    def last(self, conn: Connection, params: dict[str, Any]) -> None:
        """Read Noise message 3: the session's transport, or closed (a wrong password)."""
        hs = conn.noise
        if not isinstance(hs, noise.Handshake):
            raise ProtocolViolation("handshake out of order")
        msg = _message(params)
        try:
            hs.read_message(msg)
            conn.noise = hs.transport(max_message=self._max_message)
        except noise.NoiseError as e:
            log.info("HiveMind client refused: wrong password", extra={"client": conn.client.name})
            raise ProtocolViolation("invalid authorization") from e
        conn.send_lock = asyncio.Lock()


def _message(params: dict[str, Any]) -> bytes:
    text = params.get("msg")
    if not isinstance(text, str) or len(text) > MAX_HANDSHAKE_HEX:
        raise ProtocolViolation("malformed Noise message")
    try:
        return bytes.fromhex(text)
    except ValueError as e:
        raise ProtocolViolation("malformed Noise message") from e


def noise_json(payload: bytes) -> dict[str, Any]:
    """A handshake payload: a JSON object, or nothing."""
    if not payload:
        return {}
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as e:
        raise noise.NoiseError("handshake payload is not JSON") from e
    if not isinstance(obj, dict):
        raise noise.NoiseError("handshake payload is not an object")
    return obj
