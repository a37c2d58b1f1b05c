"""The listener's side of the handshakes: the offer, v1's password handshake, v3's Noise steps.

The server sends plaintext `hello` and `shake` (the offer). A v1 client answers with its
password envelope, which is verified (wrong password, a replayed envelope: closed); the server
answers with its own envelope and the chosen cipher and encoding. A v3 client answers with Noise
message 1 instead (v3.py), and message 3 ends its handshake. Either way the outcome is the
connection's sealer (sealing.py). `hivemind_min_protocol` 3 refuses v1 altogether.

hivemind-bus-client 0.4.4 listens for the server's `shake` only some tens of milliseconds after
its socket opens, so a shake sent at once is lost and the client stalls 5 s before trying on
its own. The server sends `hello` and its `shake` at once (a client already listening, such
as hivecall's own, answers within milliseconds), again OFFER_DELAY later if the client has
not answered (0.4.4 hears this one), and once more after RESEND_OFFER_AFTER if it is still
silent (a loaded machine). Resending more often does not pay: the 1.2 line checks the
password's strength for ~1.2 s before it answers, and it starts over on every offer it sees.
A client that answers two offers gets one key anyway: the server's iv is fixed per connection
and the key follows the client's latest envelope, which is the one the client keeps.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hivecall.hivemind.config import parse_ciphers, parse_encodings
from hivecall.hivemind.connection import Connection, Phase, ProtocolViolation, plain
from hivecall.hivemind.guard import Envelopes
from hivecall.hivemind.noise import prologue
from hivecall.hivemind.sealing import V1Sealer, V3Sealer
from hivecall.hivemind.tasks import Tasks
from hivecall.hivemind.v3 import NoiseResponder
from hivecall.hivemind_protocol.crypto import (
    Cipher,
    CryptoError,
    derive_key,
    envelope,
    envelope_iv,
    verify_envelope,
)
from hivecall.hivemind_protocol.encodings import Encoding
from hivecall.hivemind_protocol.wire import V1_OFF, HiveMessage, MsgType
from hivecall.settings import Settings

log = logging.getLogger(__name__)

MAX_SHAKES = 8  # client shakes one connection may send
OFFER_DELAY = 0.08  # seconds after the first offer, the second (0.4.4 misses the first)
RESEND_OFFER_AFTER = 2.0  # seconds after the offer, if the client has not answered
AUTH_CLOSE = (1008, "invalid authorization")


class Handshakes:
    def __init__(
        self,
        settings: Settings,
        *,
        node_id: str,
        noise: NoiseResponder | None,
        envelopes: Envelopes,
        tasks: Tasks,
    ) -> None:
        self._ciphers = parse_ciphers(settings.hivemind_ciphers)
        self._encodings = parse_encodings(settings.hivemind_encodings)
        self._binarize = settings.hivemind_binarize
        self._min_protocol = settings.hivemind_min_protocol
        self._node_id = node_id
        self._noise = noise
        self.envelopes = envelopes  # v1 envelopes seen (guard.py)
        self._tasks = tasks
        # The same payload every time: a v3 client binds the one it saw into its prologue.
        self._offer_payload: dict[str, Any] = {
            "handshake": True,
            "min_protocol_version": self._min_protocol,
            "max_protocol_version": 1,
            "binarize": self._binarize,
            "preshared_key": False,
            "password": True,
            "crypto_required": True,
            "encodings": [e.value for e in self._encodings],
            "ciphers": [c.value for c in self._ciphers],
            **(noise.offer() if noise else {}),
        }

    def _hello(self, conn: Connection) -> dict[str, Any]:
        return {"pubkey": None, "peer": conn.peer, "node_id": self._node_id}

    async def offer(self, conn: Connection) -> None:
        """hello and shake, at once; the shake again later while the client is silent."""
        await conn.ws.send(plain(MsgType.HELLO, self._hello(conn)))
        await self._send_offer(conn)
        loop = asyncio.get_running_loop()
        conn.timers.append(loop.call_later(OFFER_DELAY, self._offer_again, conn))
        conn.timers.append(
            loop.call_later(OFFER_DELAY + RESEND_OFFER_AFTER, self._offer_again, conn)
        )

    async def _send_offer(self, conn: Connection) -> None:
        await conn.ws.send(plain(MsgType.SHAKE, self._offer_payload))

    def _offer_again(self, conn: Connection) -> None:
        if conn.phase is Phase.OFFERED and not conn.closing:
            self._tasks.start(self._send_offer(conn))

    async def plaintext(self, conn: Connection, msg: HiveMessage) -> bool:
        """A plaintext message from the client: True when it finished the handshake (v3's
        message 3; a v1 handshake ends with the first frame that decrypts)."""
        if conn.phase is Phase.ESTABLISHED:
            raise ProtocolViolation("plaintext after the handshake")
        if msg.msg_type is MsgType.SHAKE:
            return await self._client_shake(conn, msg)
        if msg.msg_type is not MsgType.HELLO:  # a plaintext hello is unauthenticated: ignored
            raise ProtocolViolation("only hello and shake before the handshake")
        return False

    async def _client_shake(self, conn: Connection, msg: HiveMessage) -> bool:
        conn.shakes += 1
        if conn.shakes > MAX_SHAKES:
            raise ProtocolViolation("too many handshakes")
        p = msg.payload
        if "noise" in p:
            return await self._noise_shake(conn, p["noise"])
        if conn.noise is not None:
            raise ProtocolViolation("a v1 handshake inside a v3 one")
        if self._min_protocol >= 3:
            log.info("HiveMind v1 client refused: v1 is off", extra={"client": conn.client.name})
            raise ProtocolViolation(V1_OFF)
        await self._password_shake(conn, p)
        return False

    async def _password_shake(self, conn: Connection, p: dict[str, Any]) -> None:
        """v1: the client's envelope verified, ours sent, the key derived on both ends."""
        env = p.get("envelope")
        if not isinstance(env, str):
            raise ProtocolViolation("only the password handshake is supported")
        try:
            client_iv = envelope_iv(env)
            good = verify_envelope(env, conn.client.password)
        except CryptoError as e:
            raise ProtocolViolation("malformed envelope") from e
        if not good:
            log.info("HiveMind client refused: wrong password", extra={"client": conn.client.name})
            raise ProtocolViolation(AUTH_CLOSE[1])
        if not self.envelopes.first_use(conn.client.id, client_iv):
            log.info(
                "HiveMind client refused: replayed envelope", extra={"client": conn.client.name}
            )
            raise ProtocolViolation("envelope replayed")
        cipher = _first(p.get("ciphers"), self._ciphers, Cipher.AES_GCM)
        encoding = _first(p.get("encodings"), self._encodings, Encoding.HEX)
        if cipher is None or encoding is None:
            raise ProtocolViolation("no cipher or encoding in common")
        conn.cipher, conn.encoding = cipher, encoding
        conn.binarize = self._binarize and p.get("binarize") is True
        conn.phase = Phase.KEYED
        # Both ends derive the key now, in parallel: ours off the event loop. A client that
        # shakes again replaces it (its latest envelope is the one it keeps).
        key = asyncio.ensure_future(
            asyncio.to_thread(derive_key, conn.client.password, client_iv, conn.server_iv)
        )
        conn.sealer = V1Sealer(cipher, encoding, binarize=conn.binarize, key=key)
        await conn.ws.send(
            plain(
                MsgType.SHAKE,
                {
                    "envelope": envelope(conn.client.password, conn.server_iv),
                    "encoding": encoding.value,
                    "cipher": cipher.value,
                },
            )
        )

    async def _noise_shake(self, conn: Connection, params: object) -> bool:
        """v3 (v3.py): message 1 is answered with message 2; message 3 ends it (True)."""
        if self._noise is None:
            raise ProtocolViolation("protocol v3 is not offered")
        if not isinstance(params, dict):
            raise ProtocolViolation("malformed Noise message")
        if conn.phase is Phase.OFFERED:
            reply = await self._noise.first(
                conn,
                params,
                prologue=prologue(self._hello(conn), self._offer_payload),
                encodings=self._encodings,
                binarize=self._binarize,
            )
            await conn.ws.send(plain(MsgType.SHAKE, {"noise": {"msg": reply.hex()}}))
            return False
        if conn.phase is Phase.NOISE:
            self._noise.last(conn, params)
            assert conn.transport is not None and conn.send_lock is not None
            conn.sealer = V3Sealer(conn.transport, binarize=conn.binarize, lock=conn.send_lock)
            return True
        raise ProtocolViolation("a v3 handshake inside a v1 one")


def _first(wanted: Any, allowed: tuple[Any, ...], default: Any) -> Any:
    """The first of the client's choices the server allows (upstream: the client's order)."""
    if wanted is None:
        wanted = [default]
    if not isinstance(wanted, list):
        return None
    allowed_values = {a.value: a for a in allowed}
    for w in wanted[:32]:
        if isinstance(w, str) and w in allowed_values:
            return allowed_values[w]
    return None
